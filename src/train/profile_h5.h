// HDF5 helpers for load_balance.h5: checked calls that throw DataError naming the file, and
// attribute and whole-dataset I/O. HDF5's own error printing is silenced on every entry.
#pragma once
#include <hdf5.h>

#include <cstdint>
#include <string>
#include <vector>

#include "data/hdf5_io.h"

namespace moe::profile {

using data::H5Handle;

// Silences HDF5's error stack for the calling thread.
void h5_quiet();

[[noreturn]] void h5_fail(const std::string& path, const std::string& what);
hid_t h5_id(hid_t id, const std::string& path, const std::string& what);   // id >= 0 or DataError
void h5_ok(herr_t rc, const std::string& path, const std::string& what);   // rc >= 0 or DataError

// Attributes on a file or dataset. An int64 attribute with scalar = true is a scalar dataspace.
void write_attr_i64(hid_t obj, const char* name, const std::vector<int64_t>& values, bool scalar,
                    const std::string& path);
void write_attr_strings(hid_t obj, const char* name, const std::vector<std::string>& values,
                        const std::string& path);
std::vector<int64_t> read_attr_i64(hid_t obj, const char* name, const std::string& path);
std::vector<std::string> read_attr_strings(hid_t obj, const char* name, const std::string& path);

// Current extent of a dataset.
std::vector<hsize_t> dataset_dims(hid_t dset, const std::string& path, const std::string& name);

// Reads a whole dataset converted to mem_type (H5T_NATIVE_INT64, _DOUBLE or _FLOAT) into out,
// which must hold elem_size * npoints bytes.
void read_whole(hid_t dset, hid_t mem_type, void* out, const std::string& path, const std::string& name);

}  // namespace moe::profile
