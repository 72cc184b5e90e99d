#include "src/train/profile_h5.h"

#include "src/core/error.h"

namespace moe::profile {

void h5_quiet() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

void h5_fail(const std::string& path, const std::string& what) {
  throw DataError("load-balance profile " + path + ": " + what);
}

hid_t h5_id(hid_t id, const std::string& path, const std::string& what) {
  if (id < 0) h5_fail(path, what);
  return id;
}

void h5_ok(herr_t rc, const std::string& path, const std::string& what) {
  if (rc < 0) h5_fail(path, what);
}

void write_attr_i64(hid_t obj, const char* name, const std::vector<int64_t>& values, bool scalar,
                    const std::string& path) {
  const std::string what = std::string("cannot write attribute '") + name + "'";
  const hsize_t n = values.size();
  H5Handle space(h5_id(scalar ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &n, nullptr), path, what), H5Sclose);
  H5Handle attr(h5_id(H5Acreate2(obj, name, H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT), path, what),
                H5Aclose);
  if (!values.empty()) h5_ok(H5Awrite(attr.get(), H5T_NATIVE_INT64, values.data()), path, what);
}

void write_attr_strings(hid_t obj, const char* name, const std::vector<std::string>& values,
                        const std::string& path) {
  const std::string what = std::string("cannot write attribute '") + name + "'";
  H5Handle type(h5_id(H5Tcopy(H5T_C_S1), path, what), H5Tclose);
  h5_ok(H5Tset_size(type.get(), H5T_VARIABLE), path, what);
  h5_ok(H5Tset_cset(type.get(), H5T_CSET_UTF8), path, what);
  const hsize_t n = values.size();
  H5Handle space(h5_id(H5Screate_simple(1, &n, nullptr), path, what), H5Sclose);
  H5Handle attr(h5_id(H5Acreate2(obj, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), path, what),
                H5Aclose);
  std::vector<const char*> ptrs;
  for (const std::string& v : values) ptrs.push_back(v.c_str());
  h5_ok(H5Awrite(attr.get(), type.get(), ptrs.data()), path, what);
}

namespace {

H5Handle open_attr(hid_t obj, const char* name, const std::string& path) {
  if (H5Aexists(obj, name) <= 0) h5_fail(path, std::string("attribute '") + name + "' is missing");
  return {h5_id(H5Aopen(obj, name, H5P_DEFAULT), path, std::string("cannot open attribute '") + name + "'"),
          H5Aclose};
}

hsize_t attr_points(hid_t attr, const char* name, const std::string& path) {
  H5Handle space(h5_id(H5Aget_space(attr), path, std::string("cannot read attribute '") + name + "'"), H5Sclose);
  const hssize_t n = H5Sget_simple_extent_npoints(space.get());
  if (n < 0) h5_fail(path, std::string("cannot read attribute '") + name + "'");
  return hsize_t(n);
}

}  // namespace

std::vector<int64_t> read_attr_i64(hid_t obj, const char* name, const std::string& path) {
  H5Handle attr = open_attr(obj, name, path);
  std::vector<int64_t> values(attr_points(attr.get(), name, path));
  if (!values.empty())
    h5_ok(H5Aread(attr.get(), H5T_NATIVE_INT64, values.data()), path,
          std::string("attribute '") + name + "' is not an integer");
  return values;
}

std::vector<std::string> read_attr_strings(hid_t obj, const char* name, const std::string& path) {
  const std::string what = std::string("attribute '") + name + "' is not a list of strings";
  H5Handle attr = open_attr(obj, name, path);
  const hsize_t n = attr_points(attr.get(), name, path);
  H5Handle type(h5_id(H5Tcopy(H5T_C_S1), path, what), H5Tclose);
  h5_ok(H5Tset_size(type.get(), H5T_VARIABLE), path, what);
  h5_ok(H5Tset_cset(type.get(), H5T_CSET_UTF8), path, what);
  std::vector<char*> ptrs(n, nullptr);
  if (n > 0) h5_ok(H5Aread(attr.get(), type.get(), ptrs.data()), path, what);
  std::vector<std::string> values;
  for (char* p : ptrs) values.emplace_back(p ? p : "");
  H5Handle space(h5_id(H5Aget_space(attr.get()), path, what), H5Sclose);
  if (n > 0) H5Dvlen_reclaim(type.get(), space.get(), H5P_DEFAULT, ptrs.data());
  return values;
}

std::vector<hsize_t> dataset_dims(hid_t dset, const std::string& path, const std::string& name) {
  const std::string what = "cannot read the shape of dataset '" + name + "'";
  H5Handle space(h5_id(H5Dget_space(dset), path, what), H5Sclose);
  const int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank < 0) h5_fail(path, what);
  std::vector<hsize_t> dims(size_t(rank), 0);
  if (rank > 0) h5_ok(H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr), path, what);
  return dims;
}

void read_whole(hid_t dset, hid_t mem_type, void* out, const std::string& path, const std::string& name) {
  hsize_t n = 1;
  for (hsize_t d : dataset_dims(dset, path, name)) n *= d;
  if (n == 0) return;
  h5_ok(H5Dread(dset, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out), path,
        "cannot read dataset '" + name + "' (file damaged, or not a number?)");
}

}  // namespace moe::profile
