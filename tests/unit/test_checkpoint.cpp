#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <barrier>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "src/core/error.h"
#include "src/train/checkpoint.h"

namespace fs = std::filesystem;

namespace moe::ckpt {
namespace {

// A few named buffers standing in for parameters and Adam state.
struct State {
  std::vector<std::string> names;
  std::vector<std::vector<int64_t>> shapes;
  std::vector<std::vector<float>> data;

  explicit State(float seed) {
    add("param/layers.0.attention.wq.weight", {8, 4}, seed);
    add("param/norm.weight", {4}, seed + 1);
    add("adam_m/layers.0.moe.experts.w1", {2, 3, 4}, seed + 2);
    add("adam_v/step_scale", {}, seed + 3);
    add("param/empty", {0, 4}, seed + 4);
  }
  void add(const std::string& name, std::vector<int64_t> shape, float seed) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::vector<float> v(static_cast<size_t>(n));
    // Values with full mantissas (and a negative zero) to catch any lossy conversion.
    for (size_t i = 0; i < v.size(); ++i) v[i] = std::sin(seed * 1000.0f + static_cast<float>(i)) * 1e-3f / 3.0f;
    if (!v.empty()) v[0] = -0.0f;
    names.push_back(name);
    shapes.push_back(std::move(shape));
    data.push_back(std::move(v));
  }
  std::vector<TensorRef> refs() {
    std::vector<TensorRef> r;
    for (size_t i = 0; i < names.size(); ++i) r.push_back({names[i], shapes[i], data[i].data()});
    return r;
  }
  State zeroed_like() const {
    State s = *this;
    for (auto& v : s.data) std::fill(v.begin(), v.end(), 12345.0f);
    return s;
  }
};

bool bit_equal(const std::vector<float>& a, const std::vector<float>& b) {
  // memcmp of empty vectors would pass null pointers (undefined behaviour, caught by UBSan).
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("moe_ckpt_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    root_ = (dir_ / "run" / "checkpoints").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string save_one(State& s, int64_t step, int64_t keep = 0, const std::string& root = "") {
    SaveRequest req;
    req.root = root.empty() ? root_ : root;
    req.step = step;
    req.layout = {{"dp", 1}, {"tp", 1}, {"pp", 1}, {"ep", 1}, {"etp", 1}, {"zero_stage", 0}};
    req.meta = {{"optimizer_step", step}, {"config", "model:\n  d_model: 4\n"}};
    req.tensors = s.refs();
    req.keep = keep;
    return save(req, {}, {});
  }

  fs::path dir_;
  std::string root_;
};

// Runs f and returns the DataError's message; fails the test if none was thrown.
template <class F>
std::string data_error_of(F&& f) {
  try {
    f();
  } catch (const DataError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a DataError";
  return "";
}

TEST_F(CheckpointTest, RoundTripBitExact) {
  State s(1.0f);
  const std::string dir = save_one(s, 42);
  EXPECT_EQ(fs::path(dir).filename(), "step_00000042");
  EXPECT_TRUE(fs::exists(fs::path(dir) / "rank_00000.h5"));

  State back = s.zeroed_like();
  auto refs = back.refs();
  Loaded l = load(dir, 0, 1, refs);
  EXPECT_EQ(l.step, 42);
  EXPECT_EQ(l.layout["zero_stage"], 0);
  EXPECT_EQ(l.meta["optimizer_step"], 42);
  EXPECT_EQ(l.meta["config"], "model:\n  d_model: 4\n");
  for (size_t i = 0; i < s.data.size(); ++i) EXPECT_TRUE(bit_equal(s.data[i], back.data[i])) << s.names[i];

  const nlohmann::json m = read_manifest(dir);
  EXPECT_EQ(m["format_version"], kFormatVersion);
  EXPECT_EQ(m["world"], 1);
  EXPECT_EQ(m["checksum"], "crc32");
  ASSERT_EQ(m["ranks"].size(), 1u);
  EXPECT_EQ(m["ranks"][0]["tensors"].size(), s.names.size());
  EXPECT_EQ(m["ranks"][0]["tensors"][2]["shape"], nlohmann::json({2, 3, 4}));
  EXPECT_EQ(m["ranks"][0]["checksum"], "crc32:" + [&] {
    char b[16];
    std::snprintf(b, sizeof b, "%08llx", static_cast<unsigned long long>(file_checksum(dir + "/rank_00000.h5")));
    return std::string(b);
  }());
}

TEST_F(CheckpointTest, ChecksumIsZlibCrc32) {
  const std::string f = (dir_ / "nine.txt").string();
  std::ofstream(f) << "123456789";
  EXPECT_EQ(file_checksum(f), 0xCBF43926u);  // the CRC-32 check value
  std::ofstream(f, std::ios::trunc) << "";
  EXPECT_EQ(file_checksum(f), 0u);
  EXPECT_NE(data_error_of([&] { file_checksum(f + ".absent"); }).find(f + ".absent"), std::string::npos);
}

TEST_F(CheckpointTest, LatestIgnoresTempAndManifestlessFolders) {
  EXPECT_FALSE(latest(root_).has_value());  // root does not exist yet
  State s(2.0f);
  const std::string good = save_one(s, 10);
  fs::create_directories(fs::path(root_) / "step_00000020.tmp-save");
  fs::copy(fs::path(good), fs::path(root_) / "step_00000030.tmp-save", fs::copy_options::recursive);
  fs::create_directories(fs::path(root_) / "step_00000040");  // no manifest
  std::ofstream(fs::path(root_) / "step_00000040" / "rank_00000.h5") << "partial";
  ASSERT_TRUE(latest(root_).has_value());
  EXPECT_EQ(*latest(root_), good);
}

TEST_F(CheckpointTest, KeepLastN) {
  State s(3.0f);
  for (int64_t step = 1; step <= 5; ++step) save_one(s, step * 100, /*keep=*/2);
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(root_)) left.push_back(e.path().filename().string());
  std::sort(left.begin(), left.end());
  EXPECT_EQ(left, (std::vector<std::string>{"step_00000400", "step_00000500"}));
  save_one(s, 600, /*keep=*/0);  // keep <= 0 keeps everything
  EXPECT_EQ(std::distance(fs::directory_iterator(root_), fs::directory_iterator()), 3);
}

TEST_F(CheckpointTest, SameStepIsReplaced) {
  State a(4.0f), b(5.0f);
  save_one(a, 7);
  const std::string dir = save_one(b, 7);
  State back = b.zeroed_like();
  auto refs = back.refs();
  load(dir, 0, 1, refs);
  EXPECT_TRUE(bit_equal(back.data[0], b.data[0]));
  EXPECT_EQ(std::distance(fs::directory_iterator(root_), fs::directory_iterator()), 1);  // no leftovers
}

TEST_F(CheckpointTest, ResolveRunDirRootFolderAndBadPath) {
  State s(6.0f);
  save_one(s, 1);
  const std::string last = save_one(s, 2);
  const std::string run = (dir_ / "run").string();
  EXPECT_EQ(resolve(run), last);
  EXPECT_EQ(resolve(root_), last);
  EXPECT_EQ(resolve(last), last);
  EXPECT_EQ(resolve(root_ + "/step_00000001/"), root_ + "/step_00000001/");

  const std::string missing = (dir_ / "nope").string();
  EXPECT_NE(data_error_of([&] { resolve(missing); }).find(missing), std::string::npos);
  fs::create_directories(dir_ / "empty_run" / "checkpoints");
  const std::string empty = (dir_ / "empty_run").string();
  EXPECT_NE(data_error_of([&] { resolve(empty); }).find(empty), std::string::npos);
  const std::string file = (dir_ / "file.txt").string();
  std::ofstream(file) << "x";
  EXPECT_NE(data_error_of([&] { resolve(file); }).find(file), std::string::npos);
  fs::copy(fs::path(last), fs::path(root_) / "step_00000003.tmp-save", fs::copy_options::recursive);
  EXPECT_NE(data_error_of([&] { resolve(root_ + "/step_00000003.tmp-save"); }).find("temp"), std::string::npos);
}

TEST_F(CheckpointTest, CorruptByteIsDetected) {
  State s(7.0f);
  const std::string dir = save_one(s, 3);
  const std::string file = dir + "/rank_00000.h5";
  {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(fs::file_size(file) / 2));
    char c;
    f.read(&c, 1);
    c ^= 0x10;
    f.seekp(static_cast<std::streamoff>(fs::file_size(file) / 2));
    f.write(&c, 1);
  }
  State back = s.zeroed_like();
  auto refs = back.refs();
  const std::string msg = data_error_of([&] { load(dir, 0, 1, refs); });
  EXPECT_NE(msg.find(file), std::string::npos) << msg;
  EXPECT_NE(msg.find("checksum"), std::string::npos) << msg;

  fs::resize_file(file, fs::file_size(file) - 1);
  EXPECT_NE(data_error_of([&] { load(dir, 0, 1, refs); }).find("truncated"), std::string::npos);
  std::ofstream(dir + "/manifest.json", std::ios::trunc) << "{\"format\": ";
  EXPECT_NE(data_error_of([&] { read_manifest(dir); }).find("manifest.json"), std::string::npos);
}

TEST_F(CheckpointTest, MissingTensorWrongShapeWrongWorld) {
  State s(8.0f);
  const std::string dir = save_one(s, 4);
  State back = s.zeroed_like();
  back.add("param/layers.1.ffn_norm.weight", {4}, 0.0f);
  auto refs = back.refs();
  std::string msg = data_error_of([&] { load(dir, 0, 1, refs); });
  EXPECT_NE(msg.find("param/layers.1.ffn_norm.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("rank_00000.h5"), std::string::npos) << msg;

  State wrong = s.zeroed_like();
  wrong.shapes[1] = {2, 2};
  refs = wrong.refs();
  msg = data_error_of([&] { load(dir, 0, 1, refs); });
  EXPECT_NE(msg.find("param/norm.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[2,2]"), std::string::npos) << msg;

  refs = s.zeroed_like().refs();
  refs.resize(1);
  msg = data_error_of([&] { load(dir, 1, 2, refs); });
  EXPECT_NE(msg.find("1 ranks"), std::string::npos) << msg;
}

TEST_F(CheckpointTest, CrashLeftoversDoNotHurtAndAreCleaned) {
  State s(9.0f);
  const std::string good = save_one(s, 10);
  // A crash mid-save leaves a temp folder; a hand-made or damaged folder may lack its manifest.
  const fs::path tmp = fs::path(root_) / "step_00000020.tmp-save";
  fs::create_directories(tmp);
  std::ofstream(tmp / "rank_00000.h5") << "half a file";
  const fs::path half = fs::path(root_) / "step_00000030";
  fs::copy(fs::path(good), half, fs::copy_options::recursive);
  fs::remove(half / "manifest.json");

  EXPECT_EQ(*latest(root_), good);
  State back = s.zeroed_like();
  auto refs = back.refs();
  EXPECT_EQ(load(good, 0, 1, refs).step, 10);
  EXPECT_TRUE(bit_equal(back.data[2], s.data[2]));

  const std::string next = save_one(s, 15);
  EXPECT_FALSE(fs::exists(tmp));
  EXPECT_FALSE(fs::exists(half));
  EXPECT_TRUE(fs::exists(good));
  EXPECT_EQ(*latest(root_), next);
}

TEST_F(CheckpointTest, UnwritableRootLeavesPreviousIntact) {
  State s(10.0f);
  const std::string good = save_one(s, 5);
  const std::string file = (dir_ / "file.txt").string();
  std::ofstream(file) << "not a folder";
  const std::string bad_root = file + "/ckpt";
  const std::string msg = data_error_of([&] { save_one(s, 6, 0, bad_root); });
  EXPECT_NE(msg.find(bad_root), std::string::npos) << msg;
  EXPECT_EQ(*latest(root_), good);
}

TEST_F(CheckpointTest, Hdf5FailureMidWriteRemovesTempFolder) {
  State s(11.0f);
  const std::string good = save_one(s, 5);
  State clash(12.0f);
  clash.add("param/norm.weight/inner", {2}, 1.0f);  // a dataset cannot also be a group
  const std::string msg = data_error_of([&] { save_one(clash, 6); });
  EXPECT_NE(msg.find("rank_00000.h5"), std::string::npos) << msg;
  EXPECT_NE(msg.find("param/norm.weight/inner"), std::string::npos) << msg;
  EXPECT_EQ(std::distance(fs::directory_iterator(root_), fs::directory_iterator()), 1);
  EXPECT_EQ(*latest(root_), good);
}

// A full disk, simulated by a file-size limit: writes fail with EFBIG instead of ENOSPC.
TEST_F(CheckpointTest, DiskFullLeavesPreviousIntact) {
  State s(13.0f);
  const std::string good = save_one(s, 5);
  State big(14.0f);
  big.add("param/big", {1024, 1024}, 2.0f);  // 4 MiB
  rlimit old{};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old), 0);
  auto old_handler = signal(SIGXFSZ, SIG_IGN);
  rlimit small = old;
  small.rlim_cur = 1 << 20;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
  const std::string msg = data_error_of([&] { save_one(big, 6); });
  setrlimit(RLIMIT_FSIZE, &old);
  signal(SIGXFSZ, old_handler);
  EXPECT_NE(msg.find("step_00000006.tmp-save"), std::string::npos) << msg;
  EXPECT_FALSE(fs::exists(fs::path(root_) / "step_00000006.tmp-save"));
  EXPECT_EQ(*latest(root_), good);
  State back = s.zeroed_like();
  auto refs = back.refs();
  EXPECT_EQ(load(good, 0, 1, refs).step, 5);
}

// Two ranks as two threads; barrier and all-gather built on std::barrier.
struct FakeComm {
  explicit FakeComm(int world) : sync(world), slots(static_cast<size_t>(world)) {}
  std::barrier<> sync;
  std::vector<std::string> slots;
  std::function<void()> barrier() {
    return [this] { sync.arrive_and_wait(); };
  }
  std::function<std::vector<std::string>(const std::string&)> gather(int rank) {
    return [this, rank](const std::string& s) {
      slots[static_cast<size_t>(rank)] = s;
      sync.arrive_and_wait();
      std::vector<std::string> all = slots;
      sync.arrive_and_wait();  // nobody overwrites a slot before everyone has copied
      return all;
    };
  }
};

TEST_F(CheckpointTest, MultiRankSaveAndLoad) {
  constexpr int kWorld = 2;
  std::vector<State> states{State(20.0f), State(21.0f)};
  states[1].add("param/rank1_only", {3}, 5.0f);
  FakeComm comm(kWorld);
  std::vector<std::string> paths(kWorld);
  std::vector<std::thread> threads;
  for (int r = 0; r < kWorld; ++r)
    threads.emplace_back([&, r] {
      SaveRequest req;
      req.root = root_;
      req.step = 9;
      req.rank = r;
      req.world = kWorld;
      req.layout = {{"dp", 2}, {"tp", 1}, {"pp", 1}, {"ep", 1}, {"etp", 1}, {"zero_stage", 1}};
      req.meta = {{"from_rank", r}};
      req.tensors = states[static_cast<size_t>(r)].refs();
      paths[static_cast<size_t>(r)] = save(req, comm.barrier(), comm.gather(r));
    });
  for (auto& t : threads) t.join();
  ASSERT_EQ(paths[0], paths[1]);
  const nlohmann::json m = read_manifest(paths[0]);
  EXPECT_EQ(m["world"], 2);
  EXPECT_EQ(m["meta"]["from_rank"], 0);
  EXPECT_EQ(m["ranks"][1]["file"], "rank_00001.h5");
  for (int r = 0; r < kWorld; ++r) {
    State back = states[static_cast<size_t>(r)].zeroed_like();
    auto refs = back.refs();
    EXPECT_EQ(load(paths[0], r, kWorld, refs).layout["zero_stage"], 1);
    for (size_t i = 0; i < back.data.size(); ++i) EXPECT_TRUE(bit_equal(back.data[i], states[static_cast<size_t>(r)].data[i]));
  }
}

TEST_F(CheckpointTest, MultiRankFailureOnOneRankFailsAll) {
  constexpr int kWorld = 2;
  State good(30.0f), clash(31.0f);
  clash.add("param/norm.weight/inner", {2}, 1.0f);
  FakeComm comm(kWorld);
  std::vector<std::string> errors(kWorld);
  std::vector<std::thread> threads;
  for (int r = 0; r < kWorld; ++r)
    threads.emplace_back([&, r] {
      SaveRequest req;
      req.root = root_;
      req.step = 9;
      req.rank = r;
      req.world = kWorld;
      req.tensors = r == 1 ? clash.refs() : good.refs();
      errors[static_cast<size_t>(r)] = data_error_of([&] { save(req, comm.barrier(), comm.gather(r)); });
    });
  for (auto& t : threads) t.join();
  for (const std::string& e : errors) EXPECT_NE(e.find("rank 1"), std::string::npos) << e;
  EXPECT_FALSE(latest(root_).has_value());
  EXPECT_EQ(std::distance(fs::directory_iterator(root_), fs::directory_iterator()), 0);
}

}  // namespace
}  // namespace moe::ckpt
