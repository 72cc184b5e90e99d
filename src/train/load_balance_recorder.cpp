#include "src/train/load_balance_recorder.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "src/core/error.h"
#include "src/train/profile_h5.h"
#include "src/train/profile_schema.h"

namespace moe {

namespace {

using profile::H5Handle;
using profile::h5_fail;
using profile::h5_id;
using profile::h5_ok;

// One extendible dataset (S, row_dims...) and its rows not yet written.
struct Column {
  std::string name;
  hid_t file_type = -1, mem_type = -1;
  size_t elem_size = 0;
  std::vector<hsize_t> row_dims;
  size_t row_elems = 1;
  H5Handle dset;
  hsize_t stored = 0;  // rows in the file
  std::vector<unsigned char> pending;

  Column(std::string n, hid_t ft, hid_t mt, size_t es, std::vector<hsize_t> rd)
      : name(std::move(n)), file_type(ft), mem_type(mt), elem_size(es), row_dims(std::move(rd)) {
    for (hsize_t d : row_dims) row_elems *= size_t(d);
  }
  hsize_t pending_rows() const { return hsize_t(pending.size() / (elem_size * row_elems)); }
  void append(const void* row) {
    const auto* p = static_cast<const unsigned char*>(row);
    pending.insert(pending.end(), p, p + elem_size * row_elems);
  }
  std::vector<hsize_t> dims(hsize_t rows) const {
    std::vector<hsize_t> d{rows};
    d.insert(d.end(), row_dims.begin(), row_dims.end());
    return d;
  }
};

Column i64_column(const char* name, std::vector<hsize_t> row_dims) {
  return {name, H5T_STD_I64LE, H5T_NATIVE_INT64, sizeof(int64_t), std::move(row_dims)};
}
Column f64_column(const char* name, std::vector<hsize_t> row_dims) {
  return {name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, sizeof(double), std::move(row_dims)};
}
Column f32_column(const char* name, std::vector<hsize_t> row_dims) {
  return {name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, sizeof(float), std::move(row_dims)};
}

void create_column(hid_t file, Column& c, const std::string& path) {
  profile::h5_quiet();
  const std::string what = "cannot create dataset '" + c.name + "'";
  const std::vector<hsize_t> dims = c.dims(0);
  std::vector<hsize_t> maxdims = dims;
  maxdims[0] = H5S_UNLIMITED;
  // Chunks of up to 256 rows and about 256 KiB, so huge E x L rows do not make huge chunks.
  std::vector<hsize_t> chunk = dims;
  const hsize_t row_bytes = hsize_t(c.elem_size * c.row_elems);
  chunk[0] = std::clamp<hsize_t>((256 * 1024) / std::max<hsize_t>(row_bytes, 1), 1, 256);
  H5Handle space(h5_id(H5Screate_simple(int(dims.size()), dims.data(), maxdims.data()), path, what), H5Sclose);
  H5Handle dcpl(h5_id(H5Pcreate(H5P_DATASET_CREATE), path, what), H5Pclose);
  h5_ok(H5Pset_chunk(dcpl.get(), int(chunk.size()), chunk.data()), path, what);
  c.dset = H5Handle(
      h5_id(H5Dcreate2(file, c.name.c_str(), c.file_type, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT), path,
            what),
      H5Dclose);
  c.stored = 0;
}

void open_column(hid_t file, Column& c, const std::string& path) {
  if (H5Lexists(file, c.name.c_str(), H5P_DEFAULT) <= 0)
    h5_fail(path, "dataset '" + c.name + "' is missing; move the file aside to start a new profile");
  c.dset = H5Handle(h5_id(H5Dopen2(file, c.name.c_str(), H5P_DEFAULT), path, "cannot open dataset '" + c.name + "'"),
                    H5Dclose);
  const std::vector<hsize_t> dims = profile::dataset_dims(c.dset.get(), path, c.name);
  if (dims.empty() || std::vector<hsize_t>(dims.begin() + 1, dims.end()) != c.row_dims)
    h5_fail(path, "dataset '" + c.name + "' has another shape than this run writes (different model?); "
                  "move the file aside to start a new profile");
  c.stored = dims[0];
}

void set_rows(Column& c, hsize_t rows, const std::string& path) {
  const std::vector<hsize_t> dims = c.dims(rows);
  h5_ok(H5Dset_extent(c.dset.get(), dims.data()), path, "cannot resize dataset '" + c.name + "'");
  c.stored = rows;
}

void write_pending(Column& c, const std::string& path) {
  const hsize_t n = c.pending_rows();
  if (n == 0) return;
  const std::string what = "cannot append to dataset '" + c.name + "'; is the disk full?";
  set_rows(c, c.stored + n, path);
  c.stored -= n;
  H5Handle fspace(h5_id(H5Dget_space(c.dset.get()), path, what), H5Sclose);
  std::vector<hsize_t> start(c.row_dims.size() + 1, 0);
  start[0] = c.stored;
  const std::vector<hsize_t> count = c.dims(n);
  h5_ok(H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr), path, what);
  H5Handle mspace(h5_id(H5Screate_simple(int(count.size()), count.data(), nullptr), path, what), H5Sclose);
  h5_ok(H5Dwrite(c.dset.get(), c.mem_type, mspace.get(), fspace.get(), H5P_DEFAULT, c.pending.data()), path, what);
  c.stored += n;
  c.pending.clear();
}

// max/mean and coefficient of variation (population std / mean) of per-expert counts.
void balance_figures(const std::vector<int64_t>& counts, double* max_over_mean, double* cv) {
  double sum = 0, mx = 0;
  for (int64_t c : counts) {
    sum += double(c);
    mx = std::max(mx, double(c));
  }
  *max_over_mean = *cv = 0;
  if (counts.empty() || sum <= 0) return;
  const double mean = sum / double(counts.size());
  double var = 0;
  for (int64_t c : counts) var += (double(c) - mean) * (double(c) - mean);
  *max_over_mean = mx / mean;
  *cv = std::sqrt(var / double(counts.size())) / mean;
}

}  // namespace

struct LoadBalanceRecorder::Impl {
  std::string path;
  std::vector<int64_t> layers;
  int64_t E = 0, every = 1;
  int64_t ep = 0;  // 0 until known: no a2a_bytes column yet
  H5Handle file;   // declared before the columns, so they close first
  std::vector<Column> cols;  // step, tokens_per_expert, dropped, entropy, aux, z, max/mean, cv, bias, phases
  std::unique_ptr<Column> a2a;
  // Row scratch, reused so record() does not allocate in steady state.
  std::vector<int64_t> i64_row;
  std::vector<double> f64_row;
  std::vector<float> f32_row;

  void make_columns() {
    const hsize_t L = hsize_t(layers.size()), e = hsize_t(E);
    cols.push_back(i64_column("step", {}));
    cols.push_back(i64_column("tokens_per_expert", {L, e}));
    cols.push_back(i64_column("dropped", {L}));
    cols.push_back(f64_column("entropy", {L}));
    cols.push_back(f64_column("aux_loss", {L}));
    cols.push_back(f64_column("z_loss", {L}));
    cols.push_back(f64_column("max_over_mean", {L}));
    cols.push_back(f64_column("cv", {L}));
    cols.push_back(f32_column("bias", {L, e}));
    cols.push_back(f64_column("phase_seconds", {hsize_t(profile::kPhaseNames.size())}));
  }

  void create_file() {
    file = H5Handle(h5_id(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), path,
                          "cannot create the file; check that the run directory exists and is writable"),
                    H5Fclose);
    write_attrs();
    for (Column& c : cols) create_column(file.get(), c, path);
    std::vector<std::string> names(profile::kPhaseNames.begin(), profile::kPhaseNames.end());
    profile::write_attr_strings(cols.back().dset.get(), "phases", names, path);
  }

  void write_attrs() {
    profile::write_attr_i64(file.get(), "version", {profile::kFormatVersion}, true, path);
    profile::write_attr_i64(file.get(), "moe_layers", layers, false, path);
    profile::write_attr_i64(file.get(), "num_experts", {E}, true, path);
    profile::write_attr_i64(file.get(), "every", {every}, true, path);
  }

  void open_file(int64_t resume_step) {
    file = H5Handle(h5_id(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), path,
                          "cannot open it to append (damaged by a crash?); move it aside to start a new profile"),
                    H5Fclose);
    const std::string aside = "; move the file aside to start a new profile";
    if (profile::read_attr_i64(file.get(), "version", path) != std::vector<int64_t>{profile::kFormatVersion})
      h5_fail(path, "written by another format version" + aside);
    if (profile::read_attr_i64(file.get(), "moe_layers", path) != layers ||
        profile::read_attr_i64(file.get(), "num_experts", path) != std::vector<int64_t>{E})
      h5_fail(path, "written for other MoE layers or another number of experts" + aside);
    if (profile::read_attr_i64(file.get(), "every", path) != std::vector<int64_t>{every}) {
      h5_ok(H5Adelete(file.get(), "every"), path, "cannot update attribute 'every'");
      profile::write_attr_i64(file.get(), "every", {every}, true, path);
    }
    for (Column& c : cols) open_column(file.get(), c, path);
    if (H5Lexists(file.get(), "a2a_bytes", H5P_DEFAULT) > 0) {
      H5Handle d(h5_id(H5Dopen2(file.get(), "a2a_bytes", H5P_DEFAULT), path, "cannot open dataset 'a2a_bytes'"),
                 H5Dclose);
      const std::vector<hsize_t> dims = profile::dataset_dims(d.get(), path, "a2a_bytes");
      if (dims.size() != 3 || dims[1] != dims[2]) h5_fail(path, "dataset 'a2a_bytes' is not (S, ep, ep)" + aside);
      ep = int64_t(dims[1]);
      a2a = std::make_unique<Column>(i64_column("a2a_bytes", {dims[1], dims[2]}));
      open_column(file.get(), *a2a, path);
    }
    truncate_after(resume_step);
  }

  // A crash can leave columns of different lengths; keep the rows all have, up to resume_step.
  void truncate_after(int64_t resume_step) {
    hsize_t keep = cols[0].stored;
    for (Column& c : cols) keep = std::min(keep, c.stored);
    if (a2a) keep = std::min(keep, a2a->stored);
    std::vector<int64_t> steps(cols[0].stored);
    profile::read_whole(cols[0].dset.get(), H5T_NATIVE_INT64, steps.data(), path, "step");
    for (hsize_t i = 0; i < keep; ++i) {
      if (steps[i] > resume_step) {
        keep = i;
        break;
      }
    }
    for (Column& c : cols)
      if (c.stored != keep) set_rows(c, keep, path);
    if (a2a && a2a->stored != keep) set_rows(*a2a, keep, path);
  }

  void ensure_a2a(size_t n) {
    if (n == 0 && ep == 0) return;
    const int64_t want = int64_t(std::llround(std::sqrt(double(n))));
    MOE_CHECK(want * want == int64_t(n), "a2a_bytes must be an ep x ep matrix, got " + std::to_string(n));
    if (ep == want) return;
    if (ep != 0 || cols[0].stored + cols[0].pending_rows() > 0)
      h5_fail(path, "earlier rows were written with expert parallelism " + std::to_string(std::max<int64_t>(ep, 1)) +
                        " and this run uses " + std::to_string(std::max<int64_t>(want, 1)) +
                        "; move the file aside to start a new profile");
    ep = want;
    a2a = std::make_unique<Column>(i64_column("a2a_bytes", {hsize_t(ep), hsize_t(ep)}));
    create_column(file.get(), *a2a, path);
  }

  void flush() {
    profile::h5_quiet();
    for (Column& c : cols) write_pending(c, path);
    if (a2a) write_pending(*a2a, path);
    h5_ok(H5Fflush(file.get(), H5F_SCOPE_GLOBAL), path, "cannot flush to disk; is the disk full?");
  }
};

LoadBalanceRecorder::LoadBalanceRecorder(const std::string& path, std::vector<int64_t> moe_layers,
                                         int64_t num_experts, int64_t every, int64_t resume_step)
    : impl_(std::make_unique<Impl>()) {
  MOE_CHECK(num_experts > 0 && every > 0 && !moe_layers.empty(), "bad load-balance recorder arguments");
  profile::h5_quiet();
  Impl& m = *impl_;
  m.path = path;
  m.layers = std::move(moe_layers);
  m.E = num_experts;
  m.every = every;
  m.make_columns();
  // A fresh run (resume_step 0) starts a new file even if an old one is there.
  if (resume_step > 0 && std::filesystem::exists(path)) {
    try {
      m.open_file(resume_step);
      return;
    } catch (const DataError& e) {
      // A kill -9 can leave the profile half-written; training must resume all the same. The
      // damaged file is kept beside the new one for inspection.
      m.a2a.reset();
      m.cols.clear();
      m.file = H5Handle();
      m.ep = 0;
      m.make_columns();
      const std::string aside = path + ".damaged";
      std::error_code ec;
      std::filesystem::rename(path, aside, ec);
      std::fprintf(stderr, "moe: warning: %s; kept as %s, starting a new load-balance profile at step %lld\n",
                   e.what(), aside.c_str(), (long long)resume_step + 1);
    }
  }
  m.create_file();
}

LoadBalanceRecorder::~LoadBalanceRecorder() {
  try {
    impl_->flush();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "moe: warning: %s\n", e.what());
  }
}

void LoadBalanceRecorder::record(int64_t step, const std::vector<const LayerLoadStats*>& layers, const PhaseTimes& t,
                                 const std::vector<int64_t>& a2a_bytes) {
  if (step % impl_->every != 0) return;
  Impl& m = *impl_;
  const size_t L = m.layers.size(), E = size_t(m.E);
  MOE_CHECK(layers.size() == L, "recorder expects " + std::to_string(L) + " MoE layers, got " +
                                    std::to_string(layers.size()));
  for (const LayerLoadStats* s : layers) {  // before any column grows, so rows stay aligned
    MOE_CHECK(s->tokens_per_expert.size() == E, "tokens_per_expert has the wrong length");
    MOE_CHECK(s->bias.empty() || s->bias.size() == E, "bias has the wrong length");
  }
  m.ensure_a2a(a2a_bytes.size());

  m.cols[0].append(&step);
  m.i64_row.resize(L * E);
  for (size_t l = 0; l < L; ++l) {
    const LayerLoadStats& s = *layers[l];
    std::copy(s.tokens_per_expert.begin(), s.tokens_per_expert.end(), m.i64_row.begin() + long(l * E));
  }
  m.cols[1].append(m.i64_row.data());
  m.i64_row.resize(L);
  for (size_t l = 0; l < L; ++l) m.i64_row[l] = layers[l]->dropped;
  m.cols[2].append(m.i64_row.data());

  m.f64_row.resize(2 * L);
  auto per_layer = [&](size_t col, auto field) {
    for (size_t l = 0; l < L; ++l) m.f64_row[l] = field(*layers[l]);
    m.cols[col].append(m.f64_row.data());
  };
  per_layer(3, [](const LayerLoadStats& s) { return s.entropy; });
  per_layer(4, [](const LayerLoadStats& s) { return s.aux_loss; });
  per_layer(5, [](const LayerLoadStats& s) { return s.z_loss; });
  for (size_t l = 0; l < L; ++l) balance_figures(layers[l]->tokens_per_expert, &m.f64_row[l], &m.f64_row[L + l]);
  m.cols[6].append(m.f64_row.data());
  m.cols[7].append(m.f64_row.data() + L);

  // A layer without a balancing bias in its stats is stored as NaN ("not recorded").
  m.f32_row.assign(L * E, std::nanf(""));
  for (size_t l = 0; l < L; ++l) {
    const std::vector<float>& b = layers[l]->bias;
    std::copy(b.begin(), b.end(), m.f32_row.begin() + long(l * E));
  }
  m.cols[8].append(m.f32_row.data());
  const double phases[] = {t.attention, t.route, t.dispatch, t.experts, t.combine, t.optimizer, t.comm_wait, t.step};
  static_assert(sizeof(phases) / sizeof(phases[0]) == profile::kPhaseNames.size());
  m.cols[9].append(phases);
  if (m.a2a) m.a2a->append(a2a_bytes.data());

  if (int64_t(m.cols[0].pending_rows()) >= kFlushRows) m.flush();
}

void LoadBalanceRecorder::flush() { impl_->flush(); }

int64_t LoadBalanceRecorder::rows() const {
  return int64_t(impl_->cols[0].stored + impl_->cols[0].pending_rows());
}

}  // namespace moe
