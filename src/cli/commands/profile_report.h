// The three forms of the `moe profile` report (text for the terminal, JSON for scripts, one
// self-contained HTML file), all formatting the figures of src/train/profile_summary.h.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "src/train/profile_summary.h"

namespace moe::cli {

// "▁▂▄█": v resampled to at most `width` characters (bucket means), scaled min..max.
std::string sparkline(const std::vector<double>& v, int64_t width);
// ' ░▒▓█' for a share relative to the even share: <0.25, <0.75, <1.25, <2, >=2.
const char* shade(double ratio);

std::string profile_text(const profile::RunProfile& rp);
nlohmann::json profile_json(const profile::RunProfile& rp);
std::string profile_html(const profile::RunProfile& rp);
// `--compare`: run A and run B side by side (loss; per MoE layer imbalance, drops, entropy).
std::string profile_compare_text(const profile::RunProfile& a, const profile::RunProfile& b);
nlohmann::json profile_compare_json(const profile::RunProfile& a, const profile::RunProfile& b);

}  // namespace moe::cli
