// Rank files: one float32 HDF5 dataset per tensor, named by its logical name (h5py-readable).
// Every failed HDF5 call becomes a DataError naming the file (and the tensor when there is one).
#include <hdf5.h>

#include <string>
#include <vector>

#include "src/core/error.h"
#include "src/train/checkpoint_io.h"

namespace moe::ckpt::detail {

namespace {

// A failed H5Fclose (disk full) leaves a broken file object that makes HDF5's atexit cleanup
// segfault (1.10), turning exit code 3 into a crash. Opting out of that cleanup must happen before
// HDF5 initializes, hence a static initializer; every file is still closed explicitly (RAII).
const bool kHdf5NoAtexit = [] {
  H5dont_atexit();
  return true;
}();

// HDF5 prints its error stack to stderr by default; ours become DataErrors instead. The setting
// is per thread in thread-safe builds, so it is applied on every entry.
void silence_hdf5() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

// Owns one HDF5 id and closes it with the matching function.
class H5Id {
 public:
  H5Id(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  H5Id(const H5Id&) = delete;
  H5Id& operator=(const H5Id&) = delete;
  ~H5Id() {
    if (id_ >= 0) close_(id_);
  }
  hid_t get() const { return id_; }
  // Closes now, so that a failure (e.g. flushing to a full disk) can be reported.
  herr_t close() {
    const herr_t rc = id_ >= 0 ? close_(id_) : 0;
    id_ = H5I_INVALID_HID;
    return rc;
  }

 private:
  hid_t id_;
  herr_t (*close_)(hid_t);
};

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw DataError("checkpoint file " + path + ": " + what);
}

hid_t check_id(hid_t id, const std::string& path, const std::string& what) {
  if (id < 0) fail(path, what);
  return id;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

H5Id make_space(const std::vector<int64_t>& shape, const std::string& path, const std::string& name) {
  if (shape.empty()) return {check_id(H5Screate(H5S_SCALAR), path, "cannot create dataspace for tensor '" + name + "'"), H5Sclose};
  std::vector<hsize_t> dims(shape.begin(), shape.end());
  return {check_id(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), path,
                   "cannot create dataspace " + shape_text(shape) + " for tensor '" + name + "'"),
          H5Sclose};
}

void write_tensor(hid_t file, hid_t lcpl, const TensorRef& t, const std::string& path) {
  for (int64_t d : t.shape) MOE_CHECK(d >= 0, "negative dimension in tensor " + t.name);
  H5Id space = make_space(t.shape, path, t.name);
  H5Id dset(check_id(H5Dcreate2(file, t.name.c_str(), H5T_IEEE_F32LE, space.get(), lcpl, H5P_DEFAULT, H5P_DEFAULT),
                     path, "cannot create dataset for tensor '" + t.name + "' (is the name used twice or as a group?)"),
            H5Dclose);
  if (H5Sget_simple_extent_npoints(space.get()) == 0) return;
  MOE_CHECK(t.data != nullptr, "null data pointer for tensor " + t.name);
  if (H5Dwrite(dset.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data) < 0)
    fail(path, "cannot write tensor '" + t.name + "'; is the disk full?");
  if (dset.close() < 0) fail(path, "cannot finish tensor '" + t.name + "'; is the disk full?");
}

// Shape of a dataset as stored; {} for a scalar.
std::vector<int64_t> stored_shape(hid_t dset, const std::string& path, const std::string& name) {
  H5Id space(check_id(H5Dget_space(dset), path, "cannot read the shape of tensor '" + name + "'"), H5Sclose);
  const int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank < 0) fail(path, "cannot read the shape of tensor '" + name + "'");
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  if (rank > 0 && H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr) < 0)
    fail(path, "cannot read the shape of tensor '" + name + "'");
  return {dims.begin(), dims.end()};
}

void read_tensor(hid_t file, TensorRef& t, const std::string& path) {
  if (H5Lexists(file, t.name.c_str(), H5P_DEFAULT) <= 0)  // also false when a parent group is missing
    fail(path, "tensor '" + t.name + "' is missing from the file");
  H5Id dset(check_id(H5Dopen2(file, t.name.c_str(), H5P_DEFAULT), path, "cannot open tensor '" + t.name + "'"), H5Dclose);
  H5Id type(check_id(H5Dget_type(dset.get()), path, "cannot read the dtype of tensor '" + t.name + "'"), H5Tclose);
  if (H5Tget_class(type.get()) != H5T_FLOAT || H5Tget_size(type.get()) != 4)
    fail(path, "tensor '" + t.name + "' is not float32");
  const std::vector<int64_t> shape = stored_shape(dset.get(), path, t.name);
  if (shape != t.shape)
    fail(path, "tensor '" + t.name + "' has shape " + shape_text(shape) + ", expected " + shape_text(t.shape));
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  if (n == 0) return;
  MOE_CHECK(t.data != nullptr, "null data pointer for tensor " + t.name);
  if (H5Dread(dset.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data) < 0)
    fail(path, "cannot read tensor '" + t.name + "' (file damaged?)");
}

}  // namespace

void write_rank_file(const std::string& path, const std::vector<TensorRef>& tensors) {
  silence_hdf5();
  H5Id file(check_id(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), path,
                     "cannot create the file; is the folder writable?"),
            H5Fclose);
  // Names such as "adam_m/layers.0.x" create their groups on the way.
  H5Id lcpl(check_id(H5Pcreate(H5P_LINK_CREATE), path, "cannot create a property list"), H5Pclose);
  if (H5Pset_create_intermediate_group(lcpl.get(), 1) < 0) fail(path, "cannot set intermediate group creation");
  for (const TensorRef& t : tensors) write_tensor(file.get(), lcpl.get(), t, path);
  if (H5Fflush(file.get(), H5F_SCOPE_GLOBAL) < 0 || file.close() < 0)
    fail(path, "cannot flush the file; is the disk full?");
  fsync_path(path);
}

void read_rank_file(const std::string& path, std::vector<TensorRef>& tensors) {
  silence_hdf5();
  H5Id file(check_id(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), path, "cannot open as HDF5 (damaged?)"), H5Fclose);
  for (TensorRef& t : tensors) read_tensor(file.get(), t, path);
}

}  // namespace moe::ckpt::detail
