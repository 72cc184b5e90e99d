#include "data/hdf5_io.h"

#include <mutex>

#include "src/core/error.h"

namespace moe::data {

void hdf5_quiet() {
  static std::once_flag once;
  std::call_once(once, [] { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); });
}

H5Handle& H5Handle::operator=(H5Handle&& o) noexcept {
  if (this != &o) {
    if (id_ >= 0 && closer_) closer_(id_);
    id_ = o.id_;
    closer_ = o.closer_;
    o.id_ = -1;
  }
  return *this;
}

H5Handle::~H5Handle() {
  if (id_ >= 0 && closer_) closer_(id_);
}

std::string dtype_name(TokenDtype d) { return d == TokenDtype::kUint16 ? "uint16" : "uint32"; }

TokenDtype dtype_for_vocab(int64_t vocab_size) {
  return vocab_size <= 65536 ? TokenDtype::kUint16 : TokenDtype::kUint32;
}

TokenDtype parse_dtype(const std::string& name, const std::string& file) {
  if (name == "uint16") return TokenDtype::kUint16;
  if (name == "uint32") return TokenDtype::kUint32;
  throw DataError(file + ": unknown token dtype '" + name + "' (expected uint16 or uint32); re-run `moe data prepare`");
}

int64_t dtype_bytes(TokenDtype d) { return d == TokenDtype::kUint16 ? 2 : 4; }

namespace {

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw DataError(path + ": " + what + " (the file is truncated, corrupt or not a moe shard; re-run `moe data prepare`)");
}

hid_t checked(hid_t id, const std::string& path, const char* what) {
  if (id < 0) fail(path, what);
  return id;
}

void checked(herr_t rc, const std::string& path, const char* what) {
  if (rc < 0) fail(path, what);
}

hid_t file_type(TokenDtype d) { return d == TokenDtype::kUint16 ? H5T_STD_U16LE : H5T_STD_U32LE; }

void write_1d(hid_t file, const char* name, hid_t type, hid_t mem_type, const void* data, int64_t n,
              const std::string& path) {
  hsize_t dims[1] = {hsize_t(n)};
  H5Handle space(checked(H5Screate_simple(1, dims, nullptr), path, "H5Screate_simple"), H5Sclose);
  // Allocated early and contiguous: readers locate the raw data with H5Dget_offset.
  H5Handle dcpl(checked(H5Pcreate(H5P_DATASET_CREATE), path, "H5Pcreate"), H5Pclose);
  checked(H5Pset_layout(dcpl.get(), H5D_CONTIGUOUS), path, "H5Pset_layout");
  checked(H5Pset_alloc_time(dcpl.get(), H5D_ALLOC_TIME_EARLY), path, "H5Pset_alloc_time");
  H5Handle ds(checked(H5Dcreate2(file, name, type, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT), path,
                      "cannot create dataset"),
              H5Dclose);
  if (n > 0) checked(H5Dwrite(ds.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), path, "cannot write dataset");
}

void write_int_attr(hid_t file, const char* name, int64_t value, const std::string& path) {
  H5Handle space(checked(H5Screate(H5S_SCALAR), path, "H5Screate"), H5Sclose);
  H5Handle attr(checked(H5Acreate2(file, name, H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT), path,
                        "cannot create attribute"),
                H5Aclose);
  checked(H5Awrite(attr.get(), H5T_NATIVE_INT64, &value), path, "cannot write attribute");
}

void write_string_attr(hid_t file, const char* name, const std::string& value, const std::string& path) {
  H5Handle space(checked(H5Screate(H5S_SCALAR), path, "H5Screate"), H5Sclose);
  H5Handle type(checked(H5Tcopy(H5T_C_S1), path, "H5Tcopy"), H5Tclose);
  checked(H5Tset_size(type.get(), H5T_VARIABLE), path, "H5Tset_size");
  checked(H5Tset_cset(type.get(), H5T_CSET_UTF8), path, "H5Tset_cset");
  H5Handle attr(checked(H5Acreate2(file, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), path,
                        "cannot create attribute"),
                H5Aclose);
  const char* p = value.c_str();
  checked(H5Awrite(attr.get(), type.get(), &p), path, "cannot write attribute");
}

int64_t read_int_attr(hid_t file, const char* name, const std::string& path) {
  if (H5Aexists(file, name) <= 0) fail(path, std::string("missing attribute '") + name + "'");
  H5Handle attr(checked(H5Aopen(file, name, H5P_DEFAULT), path, "cannot open attribute"), H5Aclose);
  int64_t v = 0;
  checked(H5Aread(attr.get(), H5T_NATIVE_INT64, &v), path, "cannot read attribute");
  return v;
}

std::string read_string_attr(hid_t file, const char* name, const std::string& path) {
  if (H5Aexists(file, name) <= 0) fail(path, std::string("missing attribute '") + name + "'");
  H5Handle attr(checked(H5Aopen(file, name, H5P_DEFAULT), path, "cannot open attribute"), H5Aclose);
  H5Handle ftype(checked(H5Aget_type(attr.get()), path, "H5Aget_type"), H5Tclose);
  if (H5Tget_class(ftype.get()) != H5T_STRING || H5Tis_variable_str(ftype.get()) <= 0)
    fail(path, std::string("attribute '") + name + "' is not a variable-length string");
  H5Handle mtype(checked(H5Tcopy(H5T_C_S1), path, "H5Tcopy"), H5Tclose);
  checked(H5Tset_size(mtype.get(), H5T_VARIABLE), path, "H5Tset_size");
  checked(H5Tset_cset(mtype.get(), H5Tget_cset(ftype.get())), path, "H5Tset_cset");
  char* p = nullptr;
  checked(H5Aread(attr.get(), mtype.get(), &p), path, "cannot read attribute");
  std::string s = p ? p : "";
  H5free_memory(p);
  return s;
}

int64_t dataset_length(hid_t ds, const std::string& path, const char* name) {
  H5Handle space(checked(H5Dget_space(ds), path, "H5Dget_space"), H5Sclose);
  if (H5Sget_simple_extent_ndims(space.get()) != 1) fail(path, std::string("dataset '") + name + "' is not 1-D");
  hsize_t dims[1] = {0};
  checked(H5Sget_simple_extent_dims(space.get(), dims, nullptr), path, "H5Sget_simple_extent_dims");
  return int64_t(dims[0]);
}

H5Handle open_dataset(hid_t file, const char* name, const std::string& path) {
  if (H5Lexists(file, name, H5P_DEFAULT) <= 0) fail(path, std::string("missing dataset '") + name + "'");
  return H5Handle(checked(H5Dopen2(file, name, H5P_DEFAULT), path, "cannot open dataset"), H5Dclose);
}

H5Handle open_file(const std::string& path) {
  hdf5_quiet();
  return H5Handle(checked(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), path, "cannot open as HDF5"),
                  H5Fclose);
}

}  // namespace

void write_shard(const std::string& path, const ShardContents& shard) {
  hdf5_quiet();
  H5Handle file(checked(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), path, "cannot create file"),
                H5Fclose);
  write_1d(file.get(), "tokens", file_type(shard.dtype), H5T_NATIVE_UINT32, shard.tokens.data(),
           int64_t(shard.tokens.size()), path);
  write_1d(file.get(), "doc_offsets", H5T_STD_I64LE, H5T_NATIVE_INT64, shard.doc_offsets.data(),
           int64_t(shard.doc_offsets.size()), path);
  write_int_attr(file.get(), "vocab_size", shard.vocab_size, path);
  write_int_attr(file.get(), "version", shard.version, path);
  write_string_attr(file.get(), "tokenizer", shard.tokenizer, path);
  checked(H5Fflush(file.get(), H5F_SCOPE_LOCAL), path, "cannot flush file");
}

ShardLayout read_shard_layout(const std::string& path) {
  H5Handle file = open_file(path);
  ShardLayout out;
  H5Handle tokens = open_dataset(file.get(), "tokens", path);
  H5Handle type(checked(H5Dget_type(tokens.get()), path, "H5Dget_type"), H5Tclose);
  if (H5Tequal(type.get(), H5T_STD_U16LE) > 0) {
    out.dtype = TokenDtype::kUint16;
  } else if (H5Tequal(type.get(), H5T_STD_U32LE) > 0) {
    out.dtype = TokenDtype::kUint32;
  } else {
    fail(path, "dataset 'tokens' has a wrong dtype (expected little-endian uint16 or uint32)");
  }
  out.num_tokens = dataset_length(tokens.get(), path, "tokens");
  if (out.num_tokens > 0) {
    haddr_t off = H5Dget_offset(tokens.get());
    if (off == HADDR_UNDEF) fail(path, "dataset 'tokens' is not stored contiguously");
    out.tokens_file_offset = int64_t(off);
  }
  H5Handle docs = open_dataset(file.get(), "doc_offsets", path);
  out.num_docs = dataset_length(docs.get(), path, "doc_offsets");
  out.vocab_size = read_int_attr(file.get(), "vocab_size", path);
  out.version = read_int_attr(file.get(), "version", path);
  out.tokenizer = read_string_attr(file.get(), "tokenizer", path);
  return out;
}

ShardContents read_shard(const std::string& path) {
  ShardLayout layout = read_shard_layout(path);
  H5Handle file = open_file(path);
  ShardContents out;
  out.dtype = layout.dtype;
  out.vocab_size = layout.vocab_size;
  out.version = layout.version;
  out.tokenizer = layout.tokenizer;
  out.tokens.resize(size_t(layout.num_tokens));
  out.doc_offsets.resize(size_t(layout.num_docs));
  H5Handle tokens = open_dataset(file.get(), "tokens", path);
  if (layout.num_tokens > 0)
    checked(H5Dread(tokens.get(), H5T_NATIVE_UINT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.tokens.data()), path,
            "cannot read dataset 'tokens'");
  H5Handle docs = open_dataset(file.get(), "doc_offsets", path);
  if (layout.num_docs > 0)
    checked(H5Dread(docs.get(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.doc_offsets.data()), path,
            "cannot read dataset 'doc_offsets'");
  return out;
}

}  // namespace moe::data
