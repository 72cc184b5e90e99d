#include "data/corpus.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "data/file_util.h"
#include "src/core/error.h"

namespace fs = std::filesystem;

namespace moe::data {

namespace {

bool is_binary(const std::string& bytes) { return std::memchr(bytes.data(), 0, bytes.size()) != nullptr; }

// Recursion by hand so a symlinked folder is entered once (loops end) and files are keyed by
// their resolved path.
void walk(const fs::path& p, std::set<fs::path>& seen_dirs, std::map<fs::path, std::string>& files) {
  std::error_code ec;
  fs::path real = fs::canonical(p, ec);
  if (ec) return;  // dangling symlink
  if (fs::is_directory(real, ec)) {
    if (!seen_dirs.insert(real).second) return;
    std::vector<fs::path> children;
    for (const auto& e : fs::directory_iterator(p, fs::directory_options::skip_permission_denied, ec))
      children.push_back(e.path());
    std::sort(children.begin(), children.end());
    for (const auto& c : children) walk(c, seen_dirs, files);
  } else if (fs::is_regular_file(real, ec)) {
    auto [it, inserted] = files.emplace(real, p.string());
    if (!inserted && p.string() < it->second) it->second = p.string();
  }
}

}  // namespace

CorpusFiles collect_corpus_files(const std::vector<std::string>& inputs) {
  std::set<fs::path> seen_dirs;
  std::map<fs::path, std::string> files;  // resolved -> smallest path that reaches it
  for (const auto& in : inputs) {
    std::error_code ec;
    if (!fs::exists(in, ec))
      throw DataError("input " + in + " does not exist (pass text files, folders of them, or *.jsonl to --input)");
    walk(in, seen_dirs, files);
  }
  std::vector<std::string> paths;
  for (const auto& [real, shown] : files) paths.push_back(shown);
  std::sort(paths.begin(), paths.end());
  CorpusFiles out;
  for (const auto& p : paths) {
    std::string bytes = read_file(p);
    if (is_binary(bytes)) {
      ++out.skipped_binary;
      continue;
    }
    out.total_bytes += int64_t(bytes.size());
    out.files.push_back(p);
  }
  return out;
}

size_t find_invalid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t n = s.size(), i = 0;
  while (i < n) {
    unsigned c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2, cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3, cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4, cp = c & 0x07;
    } else {
      return i;
    }
    if (i + len > n) return i;
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    // Overlong forms, UTF-16 surrogates and code points past U+10FFFF are invalid.
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
      return i;
    i += len;
  }
  return std::string_view::npos;
}

std::string clean_document(std::string_view raw) {
  std::string out;
  out.reserve(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) {
    char c = raw[i];
    if (c == '\r') {
      out.push_back('\n');
      if (i + 1 < raw.size() && raw[i + 1] == '\n') ++i;
    } else {
      out.push_back(c);
    }
  }
  while (!out.empty() && std::strchr(" \t\n\v\f", out.back()) != nullptr) out.pop_back();
  return out;
}

namespace {

std::vector<std::string> split_jsonl(const std::string& path, const std::string& bytes) {
  std::vector<std::string> docs;
  size_t pos = 0;
  int64_t line_no = 0;
  while (pos < bytes.size()) {
    size_t end = bytes.find('\n', pos);
    if (end == std::string::npos) end = bytes.size();
    std::string_view line(bytes.data() + pos, end - pos);
    ++line_no;
    pos = end + 1;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object())
      throw DataError(path + ": line " + std::to_string(line_no) + " is not a JSON object (JSONL needs one object per line)");
    auto it = j.find("text");
    if (it == j.end() || !it->is_string())
      throw DataError(path + ": line " + std::to_string(line_no) + " has no string field \"text\"");
    docs.push_back(it->get<std::string>());
  }
  return docs;
}

// Documents separated by lines that are exactly "%" (after CR/CRLF normalization).
std::vector<std::string> split_fortune(const std::string& text) {
  std::vector<std::string> docs;
  std::string cur;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    size_t next = end == std::string::npos ? text.size() : end + 1;
    std::string_view line(text.data() + pos, (end == std::string::npos ? text.size() : end) - pos);
    if (line == "%") {
      docs.push_back(std::move(cur));
      cur.clear();
    } else {
      cur.append(text, pos, next - pos);
    }
    pos = next;
  }
  docs.push_back(std::move(cur));
  return docs;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

std::vector<std::string> split_documents(const std::string& path, const std::string& bytes) {
  if (ends_with(path, ".jsonl")) return split_jsonl(path, bytes);
  std::string text;
  text.reserve(bytes.size());
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (bytes[i] == '\r') {
      text.push_back('\n');
      if (i + 1 < bytes.size() && bytes[i + 1] == '\n') ++i;
    } else {
      text.push_back(bytes[i]);
    }
  }
  return split_fortune(text);
}

void for_each_document(const CorpusFiles& corpus, const std::function<void(const std::string&)>& fn,
                       const std::function<void(int64_t)>& progress) {
  for (const auto& path : corpus.files) {
    std::string bytes = read_file(path);
    size_t bad = find_invalid_utf8(bytes);
    if (bad != std::string_view::npos)
      throw DataError(path + ": invalid UTF-8 at byte offset " + std::to_string(bad) +
                      " (convert the file to UTF-8, e.g. with iconv, or leave it out of --input)");
    for (const auto& raw : split_documents(path, bytes)) {
      std::string doc = clean_document(raw);
      if (!doc.empty()) fn(doc);
    }
    if (progress) progress(int64_t(bytes.size()));
  }
}

}  // namespace moe::data
