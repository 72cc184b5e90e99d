#include "data/bpe.h"

#include <algorithm>
#include <queue>

namespace moe::data {

namespace {

enum class CharClass { kWord, kSpace, kOtherSpace, kPunct };

CharClass classify(unsigned char c) {
  if (c >= 0x80 || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return CharClass::kWord;
  if (c == ' ') return CharClass::kSpace;
  if (c == '\n' || c == '\t' || c == '\r' || c == '\v' || c == '\f') return CharClass::kOtherSpace;
  return CharClass::kPunct;
}

}  // namespace

void for_each_chunk(std::string_view text, const std::function<void(std::string_view)>& fn) {
  size_t i = 0, n = text.size();
  while (i < n) {
    size_t start = i;
    auto cls = classify(uint8_t(text[i]));
    if (cls == CharClass::kSpace && i + 1 < n) {
      auto next = classify(uint8_t(text[i + 1]));
      if (next == CharClass::kWord || next == CharClass::kPunct) {  // " word", " ..."
        cls = next;
        ++i;
      }
    }
    if (cls == CharClass::kOtherSpace || cls == CharClass::kSpace) {
      char c = text[i];
      while (i < n && text[i] == c && i - start < kMaxChunk) ++i;
    } else {
      while (i < n && classify(uint8_t(text[i])) == cls && i - start < kMaxChunk) ++i;
    }
    fn(text.substr(start, i - start));
  }
}

namespace {

struct Candidate {
  int64_t count;
  int32_t a, b;
  // Max-heap order: higher count first, then the smaller pair.
  bool operator<(const Candidate& o) const {
    if (count != o.count) return count < o.count;
    if (a != o.a) return a > o.a;
    return b > o.b;
  }
};

}  // namespace

std::vector<Merge> train_bpe(const std::unordered_map<std::string, int64_t>& chunk_counts, int64_t num_merges,
                             int32_t first_id) {
  // Sorted words make the per-pair word lists (and so the run) independent of hash order.
  std::vector<std::pair<std::string, int64_t>> sorted(chunk_counts.begin(), chunk_counts.end());
  std::sort(sorted.begin(), sorted.end());
  std::vector<std::vector<int32_t>> words;
  std::vector<int64_t> freq;
  std::unordered_map<uint64_t, int64_t> count;
  std::unordered_map<uint64_t, std::vector<int32_t>> where;
  for (const auto& [w, f] : sorted) {
    std::vector<int32_t> syms(w.begin(), w.end());
    for (auto& s : syms) s = int32_t(uint8_t(s));
    for (size_t i = 0; i + 1 < syms.size(); ++i) {
      uint64_t k = pair_key(syms[i], syms[i + 1]);
      count[k] += f;
      where[k].push_back(int32_t(words.size()));
    }
    words.push_back(std::move(syms));
    freq.push_back(f);
  }
  std::priority_queue<Candidate> heap;
  for (const auto& [k, c] : count) heap.push({c, int32_t(k >> 32), int32_t(uint32_t(k))});

  std::vector<Merge> merges;
  std::vector<int64_t> visited(words.size(), -1);
  std::vector<uint64_t> changed;
  while (int64_t(merges.size()) < num_merges && !heap.empty()) {
    Candidate top = heap.top();
    heap.pop();
    uint64_t key = pair_key(top.a, top.b);
    auto cit = count.find(key);
    if (cit == count.end() || cit->second != top.count || top.count <= 0) continue;  // stale
    const int32_t m = int32_t(merges.size()), id = first_id + m;
    merges.push_back({top.a, top.b});
    std::vector<int32_t> list = std::move(where[key]);
    where.erase(key);
    changed.clear();
    for (int32_t w : list) {
      if (visited[w] == m) continue;
      visited[w] = m;
      auto& syms = words[w];
      bool has = false;
      for (size_t i = 0; i + 1 < syms.size() && !has; ++i) has = syms[i] == top.a && syms[i + 1] == top.b;
      if (!has) continue;
      for (size_t i = 0; i + 1 < syms.size(); ++i) {
        uint64_t k = pair_key(syms[i], syms[i + 1]);
        count[k] -= freq[w];
        changed.push_back(k);
      }
      std::vector<int32_t> merged;
      merged.reserve(syms.size());
      for (size_t i = 0; i < syms.size(); ++i) {
        if (i + 1 < syms.size() && syms[i] == top.a && syms[i + 1] == top.b) {
          merged.push_back(id);
          ++i;
        } else {
          merged.push_back(syms[i]);
        }
      }
      syms = std::move(merged);
      for (size_t i = 0; i + 1 < syms.size(); ++i) {
        uint64_t k = pair_key(syms[i], syms[i + 1]);
        count[k] += freq[w];
        changed.push_back(k);
        if (syms[i] == id || syms[i + 1] == id) where[k].push_back(w);
      }
    }
    count.erase(key);
    std::sort(changed.begin(), changed.end());
    changed.erase(std::unique(changed.begin(), changed.end()), changed.end());
    for (uint64_t k : changed) {
      auto it = count.find(k);
      if (it == count.end()) continue;
      if (it->second > 0) heap.push({it->second, int32_t(k >> 32), int32_t(uint32_t(k))});
      else count.erase(it);
    }
  }
  return merges;
}

void encode_chunk(std::string_view chunk, const std::unordered_map<uint64_t, int32_t>& rank, int32_t first_id,
                  std::vector<int32_t>& out) {
  int32_t buf[kMaxChunk];
  size_t n = std::min(chunk.size(), kMaxChunk);
  for (size_t i = 0; i < n; ++i) buf[i] = int32_t(uint8_t(chunk[i]));
  while (n >= 2) {
    int32_t best = -1;
    size_t best_i = 0;
    for (size_t i = 0; i + 1 < n; ++i) {
      auto it = rank.find(pair_key(buf[i], buf[i + 1]));
      if (it != rank.end() && (best < 0 || it->second < best)) best = it->second, best_i = i;
    }
    if (best < 0) break;
    const int32_t a = buf[best_i], b = buf[best_i + 1], id = first_id + best;
    size_t w = 0;
    for (size_t i = 0; i < n; ++i) {
      if (i + 1 < n && buf[i] == a && buf[i + 1] == b) {
        buf[w++] = id;
        ++i;
      } else {
        buf[w++] = buf[i];
      }
    }
    n = w;
  }
  out.insert(out.end(), buf, buf + n);
}

}  // namespace moe::data
