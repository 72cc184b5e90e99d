// LoadBalanceRecorder: what it writes is read back with the plain HDF5 C API, as h5py would.
#include <hdf5.h>

#include <cmath>
#include <fstream>

#include "src/core/error.h"
#include "src/train/load_balance_recorder.h"
#include "src/train/profile_data.h"
#include "tests/unit/test_profile_fixtures.h"

namespace moe {
namespace {

using ProfileRecorder = test::ProfileTempDir;
using test::layer_stats;

// Reads a whole dataset with the C API; *dims gets its shape.
template <typename T>
std::vector<T> read_h5(const std::string& path, const char* name, hid_t mem_type, std::vector<hsize_t>* dims) {
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  EXPECT_GE(f, 0);
  hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
  EXPECT_GE(d, 0) << name;
  hid_t s = H5Dget_space(d);
  dims->assign(size_t(H5Sget_simple_extent_ndims(s)), 0);
  H5Sget_simple_extent_dims(s, dims->data(), nullptr);
  size_t n = 1;
  for (hsize_t x : *dims) n *= size_t(x);
  std::vector<T> v(n);
  if (n) {
    EXPECT_GE(H5Dread(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()), 0);
  }
  H5Sclose(s);
  H5Dclose(d);
  H5Fclose(f);
  return v;
}

std::vector<int64_t> read_i64_attr(const std::string& path, const char* name) {
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t a = H5Aopen(f, name, H5P_DEFAULT);
  hid_t s = H5Aget_space(a);
  std::vector<int64_t> v(size_t(H5Sget_simple_extent_npoints(s)));
  H5Aread(a, H5T_NATIVE_INT64, v.data());
  H5Sclose(s);
  H5Aclose(a);
  H5Fclose(f);
  return v;
}

// Counts for (step, layer): varied so that any mix-up of rows, layers or experts shows.
std::vector<int64_t> counts_for(int64_t step, int64_t layer) {
  return {10 + step, 20 + layer, 30 + 2 * step, 40 + step * layer};
}

void record_steps(LoadBalanceRecorder& rec, int64_t from, int64_t to, int64_t salt = 0) {
  for (int64_t step = from; step <= to; ++step) {
    LayerLoadStats a = layer_stats(counts_for(step + salt, 0), step, 0.5 + 0.01 * double(step));
    LayerLoadStats b = layer_stats(counts_for(step + salt, 1), 2 * step, 0.7);
    a.aux_loss = 0.01 * double(step);
    b.z_loss = 0.001 * double(step);
    b.bias = {0.5f, -0.25f, float(step), 0.0f};
    PhaseTimes t;
    t.attention = 0.001 * double(step);
    t.step = 0.02;
    rec.record(step, {&a, &b}, t, {step, 2 * step, 3 * step, 4 * step});
  }
}

TEST_F(ProfileRecorder, RoundTripMatchesInput) {
  const std::string path = file("load_balance.h5");
  {
    LoadBalanceRecorder rec(path, {0, 1}, 4, 1, 0);
    record_steps(rec, 1, 70);  // more than kFlushRows: one flush during the run, one at the end
    EXPECT_EQ(rec.rows(), 70);
  }
  std::vector<hsize_t> dims;
  const auto steps = read_h5<int64_t>(path, "step", H5T_NATIVE_INT64, &dims);
  ASSERT_EQ(dims, (std::vector<hsize_t>{70}));
  const auto tok = read_h5<int64_t>(path, "tokens_per_expert", H5T_NATIVE_INT64, &dims);
  ASSERT_EQ(dims, (std::vector<hsize_t>{70, 2, 4}));
  const auto dropped = read_h5<int64_t>(path, "dropped", H5T_NATIVE_INT64, &dims);
  const auto entropy = read_h5<double>(path, "entropy", H5T_NATIVE_DOUBLE, &dims);
  const auto aux = read_h5<double>(path, "aux_loss", H5T_NATIVE_DOUBLE, &dims);
  const auto z = read_h5<double>(path, "z_loss", H5T_NATIVE_DOUBLE, &dims);
  const auto mom = read_h5<double>(path, "max_over_mean", H5T_NATIVE_DOUBLE, &dims);
  const auto cv = read_h5<double>(path, "cv", H5T_NATIVE_DOUBLE, &dims);
  ASSERT_EQ(dims, (std::vector<hsize_t>{70, 2}));
  const auto bias = read_h5<float>(path, "bias", H5T_NATIVE_FLOAT, &dims);
  ASSERT_EQ(dims, (std::vector<hsize_t>{70, 2, 4}));
  const auto phases = read_h5<double>(path, "phase_seconds", H5T_NATIVE_DOUBLE, &dims);
  ASSERT_EQ(dims, (std::vector<hsize_t>{70, 8}));
  const auto a2a = read_h5<int64_t>(path, "a2a_bytes", H5T_NATIVE_INT64, &dims);
  ASSERT_EQ(dims, (std::vector<hsize_t>{70, 2, 2}));

  for (int64_t s = 0; s < 70; ++s) {
    const int64_t step = s + 1;
    EXPECT_EQ(steps[size_t(s)], step);
    for (int64_t l = 0; l < 2; ++l) {
      const auto c = counts_for(step, l);
      for (int64_t e = 0; e < 4; ++e) EXPECT_EQ(tok[size_t((s * 2 + l) * 4 + e)], c[size_t(e)]);
      double sum = 0, mx = 0;
      for (int64_t x : c) sum += double(x), mx = std::max(mx, double(x));
      EXPECT_DOUBLE_EQ(mom[size_t(s * 2 + l)], mx * 4 / sum);
      EXPECT_GT(cv[size_t(s * 2 + l)], 0.0);
    }
    EXPECT_EQ(dropped[size_t(s * 2)], step);
    EXPECT_EQ(dropped[size_t(s * 2 + 1)], 2 * step);
    EXPECT_DOUBLE_EQ(entropy[size_t(s * 2)], 0.5 + 0.01 * double(step));
    EXPECT_DOUBLE_EQ(aux[size_t(s * 2)], 0.01 * double(step));
    EXPECT_DOUBLE_EQ(z[size_t(s * 2 + 1)], 0.001 * double(step));
    EXPECT_TRUE(std::isnan(bias[size_t(s * 8)])) << "layer 0 has no bias: NaN";
    EXPECT_EQ(bias[size_t(s * 8 + 4 + 2)], float(step));
    EXPECT_DOUBLE_EQ(phases[size_t(s * 8)], 0.001 * double(step));
    EXPECT_DOUBLE_EQ(phases[size_t(s * 8 + 7)], 0.02);
    EXPECT_EQ(a2a[size_t(s * 4 + 3)], 4 * step);
  }
  EXPECT_EQ(read_i64_attr(path, "moe_layers"), (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(read_i64_attr(path, "num_experts"), (std::vector<int64_t>{4}));
  EXPECT_EQ(read_i64_attr(path, "every"), (std::vector<int64_t>{1}));
  EXPECT_EQ(read_i64_attr(path, "version"), (std::vector<int64_t>{1}));
  const profile::LoadBalanceData lb = profile::read_load_balance(path);
  EXPECT_EQ(lb.phase_names.front(), "attention");
  EXPECT_EQ(lb.phase_names.back(), "step");
  EXPECT_EQ(lb.ep, 2);
}

TEST_F(ProfileRecorder, CvIsPopulationStdOverMean) {
  const std::string path = file("load_balance.h5");
  {
    LoadBalanceRecorder rec(path, {3}, 4, 1, 0);
    LayerLoadStats a = layer_stats({40, 20, 20, 20});
    rec.record(1, {&a}, {}, {});
  }
  std::vector<hsize_t> dims;
  EXPECT_NEAR(read_h5<double>(path, "cv", H5T_NATIVE_DOUBLE, &dims)[0], std::sqrt(75.0) / 25.0, 1e-12);
  EXPECT_DOUBLE_EQ(read_h5<double>(path, "max_over_mean", H5T_NATIVE_DOUBLE, &dims)[0], 1.6);
  EXPECT_EQ(profile::read_load_balance(path).ep, 0) << "no a2a_bytes dataset when ep == 1";
}

TEST_F(ProfileRecorder, RecordsOnlyEveryNthStepAndFlushesOnRequest) {
  const std::string path = file("load_balance.h5");
  LoadBalanceRecorder rec(path, {0}, 2, 5, 0);
  LayerLoadStats a = layer_stats({3, 5});
  for (int64_t step = 1; step <= 12; ++step) rec.record(step, {&a}, {}, {});
  rec.flush();  // readable while the recorder is still open (what a crash would leave)
  EXPECT_EQ(profile::read_load_balance(path).step, (std::vector<int64_t>{5, 10}));
}

TEST_F(ProfileRecorder, ResumeDropsRowsAfterTheResumeStep) {
  const std::string path = file("load_balance.h5");
  {
    LoadBalanceRecorder rec(path, {0, 1}, 4, 1, 0);
    record_steps(rec, 1, 10);
  }
  {
    LoadBalanceRecorder rec(path, {0, 1}, 4, 1, 6);  // resumed from the step-6 checkpoint
    EXPECT_EQ(rec.rows(), 6);
    record_steps(rec, 7, 8, 100);
  }
  const profile::LoadBalanceData lb = profile::read_load_balance(path);
  EXPECT_EQ(lb.step, (std::vector<int64_t>{1, 2, 3, 4, 5, 6, 7, 8}));
  EXPECT_EQ(lb.tokens_per_expert[5 * 8], counts_for(6, 0)[0]) << "rows up to the resume step are kept";
  EXPECT_EQ(lb.tokens_per_expert[6 * 8], counts_for(107, 0)[0]) << "step 7 is the resumed run's row";
  EXPECT_EQ(lb.a2a_bytes.size(), 8u * 4u);
}

TEST_F(ProfileRecorder, FreshRunReplacesAnOldFile) {
  const std::string path = file("load_balance.h5");
  {
    LoadBalanceRecorder rec(path, {0, 1}, 4, 1, 0);
    record_steps(rec, 1, 5);
  }
  {
    LoadBalanceRecorder rec(path, {0}, 2, 1, 0);  // another model, resume_step 0
    LayerLoadStats a = layer_stats({1, 1});
    rec.record(1, {&a}, {}, {});
  }
  const profile::LoadBalanceData lb = profile::read_load_balance(path);
  EXPECT_EQ(lb.num_experts, 2);
  EXPECT_EQ(lb.step, (std::vector<int64_t>{1}));
}

// A profile that cannot be appended to (another model, or damaged by kill -9) must not stop a
// resumed run: it is kept beside a new file.
TEST_F(ProfileRecorder, ResumingWithAnotherModelKeepsTheOldFileAside) {
  const std::string path = file("load_balance.h5");
  {
    LoadBalanceRecorder rec(path, {0, 1}, 4, 1, 0);
    record_steps(rec, 1, 3);
  }
  {
    LoadBalanceRecorder rec(path, {0, 1}, 8, 1, 2);
    EXPECT_EQ(rec.rows(), 0);
  }
  EXPECT_EQ(read_i64_attr(path, "num_experts"), (std::vector<int64_t>{8}));
  EXPECT_EQ(read_i64_attr(path + ".damaged", "num_experts"), (std::vector<int64_t>{4}));
}

TEST_F(ProfileRecorder, DamagedFileIsSetAsideOnResumeAndDataErrorOnRead) {
  const std::string path = file("load_balance.h5");
  std::ofstream(path) << "not an HDF5 file";
  try {
    profile::read_load_balance(path);
    FAIL() << "expected DataError";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  {
    LoadBalanceRecorder rec(path, {0, 1}, 4, 1, 10);
    record_steps(rec, 11, 12);
  }
  EXPECT_EQ(profile::read_load_balance(path).step, (std::vector<int64_t>{11, 12}));
  std::ifstream aside(path + ".damaged");
  std::string text((std::istreambuf_iterator<char>(aside)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "not an HDF5 file");
  EXPECT_THROW(LoadBalanceRecorder(file("no/such/dir/load_balance.h5"), {0}, 4, 1, 0), DataError);
}

}  // namespace
}  // namespace moe
