// `moe generate`: sample text from a checkpoint or exported file with the KV-cache decoder, using
// the tokenizer of the dataset its config names (data.path; --set data.path=DIR to point elsewhere).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <memory>

#include <nlohmann/json.hpp>

#include "data/tokenizer.h"
#include "src/cli/commands/commands.h"
#include "src/core/error.h"
#include "src/train/checkpoint_state.h"
#include "src/train/device_select.h"
#include "src/train/export.h"
#include "src/train/generate.h"
#include "src/train/model_state.h"

namespace moe::cli {

namespace {

struct GenerateArgs {
  std::string from, prompt;
  std::vector<std::string> sets;
  int64_t max_tokens = 64;
  double temperature = 1.0, top_p = 1.0;
  uint64_t seed = 0;
  bool json = false;
  std::string device = "auto";
};

int run_generate(const GenerateArgs& a) {
  const Config c = stored_config(a.from, a.sets);
  check_generation_config(c);
  const data::Tokenizer tok = data::Tokenizer::load(c.data.path);
  if (tok.vocab_size() > c.model.vocab_size)
    throw DataError("the tokenizer of " + c.data.path + " has " + std::to_string(tok.vocab_size()) +
                    " ids but the model's vocab_size is " + std::to_string(c.model.vocab_size) +
                    ": point data.path (--set data.path=DIR) at the dataset the model was trained on");
  ModelState model(c);
  load_weights(a.from, model);
  // Generation starts like a document of the training data: right after an <eos>.
  std::vector<int32_t> prompt{tok.eos_id()};
  tok.encode_append(a.prompt, prompt);
  SamplingOptions o;
  o.temperature = a.temperature;
  o.top_p = a.top_p;
  o.seed = a.seed;
  const auto decoder = make_token_decoder(c, model.p, model.params.data(), int64_t(prompt.size()) + a.max_tokens,
                                          a.device);
  const std::vector<int32_t> out = generate(*decoder, prompt, a.max_tokens, o, tok.eos_id());
  const std::string text = tok.decode(out);
  if (a.json) {
    nlohmann::json j = {{"prompt", a.prompt}, {"completion", text}, {"tokens", out}};
    std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    std::printf("%s%s\n", a.prompt.c_str(), text.c_str());
  }
  return kExitOk;
}

}  // namespace

void add_generate_commands(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<GenerateArgs>();
  CLI::App* g = app.add_subcommand("generate", "Generate text from a checkpoint (KV-cache decoding on the CPU or a GPU)");
  g->add_option("--from", args->from, "Checkpoint folder, run directory, checkpoints root or exported file")
      ->required();
  g->add_option("--prompt", args->prompt, "Text to continue")->required();
  g->add_option("--max-tokens", args->max_tokens, "Tokens to generate at most (default 64)")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 20));
  g->add_option("--temperature", args->temperature, "Sampling temperature; 0 = greedy (default 1)")
      ->check(CLI::Range(0.0, 100.0));
  g->add_option("--top-p", args->top_p, "Nucleus sampling mass in (0, 1] (default 1)")
      ->check(CLI::Range(1e-9, 1.0));
  g->add_option("--seed", args->seed, "Sampling seed (default 0)");
  g->add_option("--set", args->sets, "Override a key of the stored config, e.g. data.path=DIR (repeatable)");
  g->add_flag("--json", args->json, "Print one JSON object: prompt, completion, tokens");
  g->add_option("--device", args->device, "cpu, cuda or auto (default: the GPU when one is present)");
  g->callback([args, &exit_code] { exit_code = run_generate(*args); });
}

}  // namespace moe::cli
