#include "src/train/profile_data.h"

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "src/core/error.h"
#include "src/train/profile_h5.h"

namespace moe::profile {

namespace {

std::string dims_text(const std::vector<hsize_t>& d) {
  std::string s = "(";
  for (size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
  return s + ")";
}

// Reads dataset `name`, which must have shape `want`, converted to T.
template <typename T>
void read_dataset(hid_t file, const char* name, const std::vector<hsize_t>& want, hid_t mem_type, std::vector<T>& out,
                  const std::string& path) {
  if (H5Lexists(file, name, H5P_DEFAULT) <= 0) h5_fail(path, std::string("dataset '") + name + "' is missing");
  H5Handle d(h5_id(H5Dopen2(file, name, H5P_DEFAULT), path, std::string("cannot open dataset '") + name + "'"),
             H5Dclose);
  const std::vector<hsize_t> got = dataset_dims(d.get(), path, name);
  if (got != want)
    h5_fail(path, std::string("dataset '") + name + "' has shape " + dims_text(got) + ", expected " +
                      dims_text(want));
  size_t n = 1;
  for (hsize_t x : want) n *= size_t(x);
  out.resize(n);
  read_whole(d.get(), mem_type, out.data(), path, name);
}

int64_t scalar_attr(hid_t file, const char* name, const std::string& path) {
  std::vector<int64_t> v = read_attr_i64(file, name, path);
  if (v.size() != 1) h5_fail(path, std::string("attribute '") + name + "' is not a single integer");
  return v[0];
}

}  // namespace

LoadBalanceData read_load_balance(const std::string& path) {
  h5_quiet();
  if (!std::filesystem::is_regular_file(path)) throw DataError(path + ": no such file");
  LoadBalanceData r;
  r.path = path;
  // Without a file lock, so a running trainer's file can be read between its flushes; a file this
  // process already has open (tests) only opens with the default properties.
  H5Handle fapl(h5_id(H5Pcreate(H5P_FILE_ACCESS), path, "cannot set up file access"), H5Pclose);
  h5_ok(H5Pset_file_locking(fapl.get(), false, true), path, "cannot set up file access");
  hid_t fid = H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.get());
  if (fid < 0) fid = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  H5Handle file(h5_id(fid, path, "not a readable HDF5 file (damaged?)"), H5Fclose);
  const hid_t f = file.get();
  r.version = scalar_attr(f, "version", path);
  if (r.version != 1) h5_fail(path, "format version " + std::to_string(r.version) + " is not supported (expected 1)");
  r.num_experts = scalar_attr(f, "num_experts", path);
  r.every = scalar_attr(f, "every", path);
  r.moe_layers = read_attr_i64(f, "moe_layers", path);
  if (r.num_experts <= 0 || r.moe_layers.empty()) h5_fail(path, "attributes num_experts / moe_layers are empty");

  if (H5Lexists(f, "step", H5P_DEFAULT) <= 0) h5_fail(path, "dataset 'step' is missing");
  H5Handle sd(h5_id(H5Dopen2(f, "step", H5P_DEFAULT), path, "cannot open dataset 'step'"), H5Dclose);
  const std::vector<hsize_t> sdims = dataset_dims(sd.get(), path, "step");
  if (sdims.size() != 1) h5_fail(path, "dataset 'step' is not one-dimensional");
  const hsize_t S = sdims[0], L = r.moe_layers.size(), E = hsize_t(r.num_experts);
  read_dataset(f, "step", {S}, H5T_NATIVE_INT64, r.step, path);
  read_dataset(f, "tokens_per_expert", {S, L, E}, H5T_NATIVE_INT64, r.tokens_per_expert, path);
  read_dataset(f, "dropped", {S, L}, H5T_NATIVE_INT64, r.dropped, path);
  read_dataset(f, "entropy", {S, L}, H5T_NATIVE_DOUBLE, r.entropy, path);
  read_dataset(f, "aux_loss", {S, L}, H5T_NATIVE_DOUBLE, r.aux_loss, path);
  read_dataset(f, "z_loss", {S, L}, H5T_NATIVE_DOUBLE, r.z_loss, path);
  read_dataset(f, "max_over_mean", {S, L}, H5T_NATIVE_DOUBLE, r.max_over_mean, path);
  read_dataset(f, "cv", {S, L}, H5T_NATIVE_DOUBLE, r.cv, path);
  read_dataset(f, "bias", {S, L, E}, H5T_NATIVE_FLOAT, r.bias, path);

  if (H5Lexists(f, "phase_seconds", H5P_DEFAULT) <= 0) h5_fail(path, "dataset 'phase_seconds' is missing");
  H5Handle pd(h5_id(H5Dopen2(f, "phase_seconds", H5P_DEFAULT), path, "cannot open dataset 'phase_seconds'"),
              H5Dclose);
  r.phase_names = read_attr_strings(pd.get(), "phases", path);
  read_dataset(f, "phase_seconds", {S, hsize_t(r.phase_names.size())}, H5T_NATIVE_DOUBLE, r.phase_seconds, path);

  if (H5Lexists(f, "a2a_bytes", H5P_DEFAULT) > 0) {
    H5Handle ad(h5_id(H5Dopen2(f, "a2a_bytes", H5P_DEFAULT), path, "cannot open dataset 'a2a_bytes'"), H5Dclose);
    const std::vector<hsize_t> adims = dataset_dims(ad.get(), path, "a2a_bytes");
    if (adims.size() != 3 || adims[1] != adims[2]) h5_fail(path, "dataset 'a2a_bytes' is not (S, ep, ep)");
    r.ep = int64_t(adims[1]);
    read_dataset(f, "a2a_bytes", {S, adims[1], adims[1]}, H5T_NATIVE_INT64, r.a2a_bytes, path);
  }
  return r;
}

std::vector<MetricsRow> read_metrics(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw DataError(path + ": cannot open (is this a run directory written by `moe train`?)");
  std::vector<MetricsRow> rows;
  std::string line;
  for (int64_t line_no = 1; std::getline(in, line); ++line_no) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(line_no);
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    // A crash can leave the last line cut short; anything else damaged is an error.
    if (j.is_discarded()) {
      if (in.peek() == std::char_traits<char>::eof()) break;
      throw DataError(where + ": not a JSON object (file damaged?)");
    }
    if (!j.is_object() || !j.contains("step") || !j["step"].is_number_integer() || !j.contains("loss") ||
        !j["loss"].is_number())
      throw DataError(where + ": expected a JSON object with integer 'step' and number 'loss'");
    MetricsRow r;
    r.step = j["step"].get<int64_t>();
    r.loss = j["loss"].get<double>();
    if (j.contains("tokens_per_s") && j["tokens_per_s"].is_number()) r.tokens_per_s = j["tokens_per_s"].get<double>();
    while (!rows.empty() && rows.back().step >= r.step) rows.pop_back();
    rows.push_back(r);
  }
  return rows;
}

}  // namespace moe::profile
