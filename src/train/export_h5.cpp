// HDF5 export: one float32 dataset per tensor at the root, named by its logical name, and the
// resolved config as the root attribute "moe_config" (a UTF-8 string), readable with h5py.
// Object timestamps are off, so the same weights give the same bytes.
#include <cstdio>
#include <filesystem>

#include "data/hdf5_io.h"
#include "src/core/error.h"
#include "src/train/export.h"
#include "src/train/export_io.h"

namespace moe {

namespace {

using data::H5Handle;
constexpr const char* kConfigAttr = "moe_config";

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw DataError("HDF5 export file " + path + ": " + what);
}

hid_t check(hid_t id, const std::string& path, const std::string& what) {
  if (id < 0) fail(path, what);
  return id;
}

H5Handle utf8_string_type() {
  H5Handle t(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(t.get(), H5T_VARIABLE);
  H5Tset_cset(t.get(), H5T_CSET_UTF8);
  return t;
}

class H5ExportFile final : public ExportedFile {
 public:
  explicit H5ExportFile(const std::string& path) : path_(path) {
    data::hdf5_quiet();
    file_ = H5Handle(check(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), path, "cannot open it as HDF5"),
                     H5Fclose);
    if (H5Aexists(file_.get(), kConfigAttr) <= 0)
      fail(path, "has no root attribute \"" + std::string(kConfigAttr) +
                     "\" (not written by moe export); moe needs the config stored with the weights");
    H5Handle attr(check(H5Aopen(file_.get(), kConfigAttr, H5P_DEFAULT), path, "cannot open moe_config"), H5Aclose);
    H5Handle type = utf8_string_type();
    char* text = nullptr;
    if (H5Aread(attr.get(), type.get(), &text) < 0 || !text) fail(path, "cannot read the moe_config attribute");
    config_ = text;
    H5free_memory(text);
  }
  const std::string& path() const override { return path_; }
  const std::string& config_text() const override { return config_; }
  std::vector<int64_t> shape(const std::string& name) const override {
    H5Handle ds = open(name);
    H5Handle type(H5Dget_type(ds.get()), H5Tclose);
    if (H5Tget_class(type.get()) != H5T_FLOAT || H5Tget_size(type.get()) != 4)
      fail(path_, "tensor " + name + " is not float32 (the only dtype moe exports and imports)");
    H5Handle space(H5Dget_space(ds.get()), H5Sclose);
    const int rank = H5Sget_simple_extent_ndims(space.get());
    if (rank < 0) fail(path_, "cannot read the shape of tensor " + name);
    std::vector<hsize_t> dims(static_cast<size_t>(rank));
    H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
    return std::vector<int64_t>(dims.begin(), dims.end());
  }
  void read(const std::string& name, float* out) const override {
    H5Handle ds = open(name);
    if (H5Dread(ds.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0)
      fail(path_, "cannot read tensor " + name);
  }

 private:
  H5Handle open(const std::string& name) const {
    if (H5Lexists(file_.get(), name.c_str(), H5P_DEFAULT) <= 0)
      fail(path_, "has no tensor " + name + " that this model needs: it was exported from another model");
    return H5Handle(check(H5Dopen2(file_.get(), name.c_str(), H5P_DEFAULT), path_, "cannot open tensor " + name),
                    H5Dclose);
  }
  std::string path_, config_;
  H5Handle file_;
};

}  // namespace

std::unique_ptr<ExportedFile> open_export_h5(const std::string& path) { return std::make_unique<H5ExportFile>(path); }

void write_export_h5(const std::string& path, const std::vector<ExportTensor>& tensors, const std::string& config_text) {
  data::hdf5_quiet();
  const std::string part = path + ".part";
  {
    H5Handle file(check(H5Fcreate(part.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), part, "cannot create it"),
                  H5Fclose);
    H5Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
    H5Pset_obj_track_times(dcpl.get(), false);
    for (const auto& t : tensors) {
      std::vector<hsize_t> dims(t.shape.begin(), t.shape.end());
      H5Handle space(t.shape.empty() ? H5Screate(H5S_SCALAR) : H5Screate_simple(int(dims.size()), dims.data(), nullptr),
                     H5Sclose);
      H5Handle ds(check(H5Dcreate2(file.get(), t.name.c_str(), H5T_IEEE_F32LE, space.get(), H5P_DEFAULT, dcpl.get(),
                                   H5P_DEFAULT),
                        part, "cannot create tensor " + t.name),
                  H5Dclose);
      if (H5Dwrite(ds.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data) < 0)
        fail(part, "cannot write tensor " + t.name + " (disk full?)");
    }
    H5Handle type = utf8_string_type();
    H5Handle scalar(H5Screate(H5S_SCALAR), H5Sclose);
    H5Handle attr(check(H5Acreate2(file.get(), kConfigAttr, type.get(), scalar.get(), H5P_DEFAULT, H5P_DEFAULT), part,
                        "cannot create the moe_config attribute"),
                  H5Aclose);
    const char* text = config_text.c_str();
    if (H5Awrite(attr.get(), type.get(), &text) < 0) fail(part, "cannot write the moe_config attribute");
  }
  std::error_code ec;
  std::filesystem::rename(part, path, ec);
  if (ec) throw DataError("cannot rename " + part + " to " + path + ": " + ec.message());
}

}  // namespace moe
