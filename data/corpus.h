// Input side of `moe data prepare`: which files, how they split into documents, how documents are
// cleaned (rules in docs/data-format.md).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace moe::data {

struct CorpusFiles {
  std::vector<std::string> files;  // sorted by path, de-duplicated by resolved path
  int64_t skipped_binary = 0;      // files containing NUL bytes (e.g. fortune's .dat indexes)
  int64_t total_bytes = 0;         // bytes of the kept files
};

// Expands files and folders (recursively, following symlinks). DataError on a missing input.
CorpusFiles collect_corpus_files(const std::vector<std::string>& inputs);

// Byte offset of the first invalid UTF-8 sequence, or npos when `s` is valid UTF-8.
size_t find_invalid_utf8(std::string_view s);

// CRLF/CR -> LF, then trailing whitespace removed.
std::string clean_document(std::string_view raw);

// Splits one file's text into raw documents: JSONL (one "text" per line) when the name ends in
// .jsonl; otherwise lines consisting only of `%` separate documents (fortune format).
std::vector<std::string> split_documents(const std::string& path, const std::string& bytes);

// Calls fn(document) for every cleaned, non-empty document of every file, in order, and
// progress(bytes) after each file. DataError naming the file for invalid UTF-8 or bad JSONL.
void for_each_document(const CorpusFiles& corpus, const std::function<void(const std::string&)>& fn,
                       const std::function<void(int64_t)>& progress = {});

}  // namespace moe::data
