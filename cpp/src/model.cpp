// caloforge::Model: an AOTInductor package run by libtorch (see caloforge.hpp).
#include "caloforge/caloforge.hpp"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <c10/util/Exception.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <unordered_map>

namespace caloforge {
namespace {

constexpr const char* kFormat = "caloforge-aoti-1";

// First line of a libtorch error, without its C++ backtrace.
std::string first_line(const std::exception& exc) {
  const auto* c10_error = dynamic_cast<const c10::Error*>(&exc);
  std::string text = c10_error ? c10_error->what_without_backtrace() : exc.what();
  auto end = text.find('\n');
  return end == std::string::npos ? text : text.substr(0, end);
}

// The fields of a comma-separated list, empty ones kept: "MeV," (an energy, then a dimensionless
// condition) is two units, where std::getline would drop the trailing empty one.
std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t comma; (comma = text.find(',', start)) != std::string::npos; start = comma + 1)
    parts.push_back(text.substr(start, comma - start));
  parts.push_back(text.substr(start));
  return parts;
}

}  // namespace

struct Model::Impl {
  std::string path, detector, detector_yaml, producer, cell_order, version;
  std::vector<Condition> conditions;
  int64_t n_cells = 0, latent_dim = 0;
  int energy_index = -1;                // the "energy" condition, or -1
  std::vector<int> momentum;            // px, py, pz when the energy is |p|
  std::unique_ptr<torch::inductor::AOTIModelPackageLoader> loader;

  const std::string& entry(const std::unordered_map<std::string, std::string>& meta,
                           const std::string& key) const {
    auto it = meta.find("caloforge." + key);
    if (it == meta.end())
      throw ModelFileError("model package " + path + " lacks its caloforge." + key + " entry");
    return it->second;
  }
};

Model::Model(const std::string& path_in, int runners) : impl_(std::make_unique<Impl>()) {
  namespace fs = std::filesystem;
  std::string path = path_in;
  if (fs::is_directory(path)) path = (fs::path(path) / "model.pt2").string();
  impl_->path = path;
  if (!fs::is_regular_file(path)) throw ModelFileError("no model package at " + path);
  if (runners < 1) throw Error("runners must be at least 1, got " + std::to_string(runners));
  std::unordered_map<std::string, std::string> meta;
  try {
    meta = torch::inductor::AOTIModelPackageLoader::load_metadata_from_package(path, "model");
  } catch (const std::exception& exc) {
    throw ModelFileError("cannot load model package " + path + ": " + first_line(exc));
  }
  auto format = meta.find("caloforge.format");
  if (format == meta.end() || format->second != kFormat)
    throw ModelFileError(path + " is not a caloforge model package (" + kFormat + ")");
  Impl& m = *impl_;
  m.detector = m.entry(meta, "detector");
  m.detector_yaml = m.entry(meta, "detector_yaml");
  m.producer = m.entry(meta, "producer");
  m.cell_order = m.entry(meta, "cell_order");
  m.version = m.entry(meta, "caloforge_version");
  m.n_cells = std::stoll(m.entry(meta, "n_cells"));
  m.latent_dim = std::stoll(m.entry(meta, "latent_dim"));
  auto names = split(m.entry(meta, "conditions"));
  auto units = split(m.entry(meta, "condition_units"));
  auto lows = split(m.entry(meta, "condition_min"));
  auto highs = split(m.entry(meta, "condition_max"));
  if (units.size() != names.size() || lows.size() != names.size() || highs.size() != names.size())
    throw ModelFileError("model package " + path + " has inconsistent condition entries");
  for (size_t i = 0; i < names.size(); ++i)
    m.conditions.push_back({names[i], units[i], std::stod(lows[i]), std::stod(highs[i])});
  const std::string& energy_from = m.entry(meta, "energy_from");
  if (energy_from == "energy") {
    m.energy_index = index_of("energy");
  } else {
    m.momentum = {index_of("px"), index_of("py"), index_of("pz")};
  }
  try {
    m.loader = std::make_unique<torch::inductor::AOTIModelPackageLoader>(
        path, "model", /*run_single_threaded=*/false, static_cast<size_t>(runners));
  } catch (const std::exception& exc) {
    throw ModelFileError("cannot load model package " + path + ": " + first_line(exc));
  }
}

Model::~Model() = default;
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;

const std::string& Model::path() const { return impl_->path; }
const std::string& Model::detector() const { return impl_->detector; }
const std::string& Model::detector_yaml() const { return impl_->detector_yaml; }
const std::string& Model::producer() const { return impl_->producer; }
const std::string& Model::cell_order() const { return impl_->cell_order; }
const std::string& Model::caloforge_version() const { return impl_->version; }
const std::vector<Condition>& Model::conditions() const { return impl_->conditions; }
int64_t Model::n_cells() const { return impl_->n_cells; }
int64_t Model::latent_dim() const { return impl_->latent_dim; }

void Model::require_detector(const std::string& name) const {
  if (name != impl_->detector)
    throw DetectorMismatch("model " + impl_->path + " was trained for detector " +
                           impl_->detector + ", not " + name);
}

int Model::index_of(const std::string& condition) const {
  const auto& conditions = impl_->conditions;
  for (size_t i = 0; i < conditions.size(); ++i)
    if (conditions[i].name == condition) return static_cast<int>(i);
  std::string known;
  for (const auto& c : conditions) known += (known.empty() ? "" : ", ") + c.name;
  throw ConditionError("model " + impl_->path + " has no condition " + condition +
                       " (it has " + known + ")");
}

bool Model::in_training_range(const float* row) const {
  const auto& conditions = impl_->conditions;
  for (size_t i = 0; i < conditions.size(); ++i)
    if (!(row[i] >= conditions[i].min && row[i] <= conditions[i].max)) return false;
  return true;
}

double Model::incident_energy(const float* row) const {
  if (impl_->energy_index >= 0) return row[impl_->energy_index];
  double sum = 0;
  for (int i : impl_->momentum) sum += double(row[i]) * row[i];
  return std::sqrt(sum);
}

std::vector<float> Model::decode(const float* noise, const float* conditions, int64_t n) const {
  const int64_t k = static_cast<int64_t>(impl_->conditions.size());
  std::vector<float> cells(static_cast<size_t>(n * impl_->n_cells));
  if (n == 0) return cells;
  c10::InferenceMode guard;
  for (int64_t first = 0; first < n; first += kMaxBatch) {
    const int64_t rows = std::min(kMaxBatch, n - first);
    // The runner only reads its inputs; from_blob wraps the caller's memory without a copy.
    auto z = at::from_blob(const_cast<float*>(noise + first * impl_->latent_dim),
                           {rows, impl_->latent_dim}, at::kFloat);
    auto c = at::from_blob(const_cast<float*>(conditions + first * k), {rows, k}, at::kFloat);
    std::vector<at::Tensor> out;
    try {
      out = impl_->loader->run({z, c});
    } catch (const std::exception& exc) {
      throw Error("model " + impl_->path + " failed to run: " + first_line(exc));
    }
    at::Tensor showers = out.at(0).contiguous();
    if (showers.size(0) != rows || showers.size(1) != impl_->n_cells)
      throw Error("model " + impl_->path + " returned a tensor of the wrong shape");
    std::memcpy(cells.data() + first * impl_->n_cells, showers.data_ptr<float>(),
                sizeof(float) * rows * impl_->n_cells);
  }
  return cells;
}

std::vector<float> Model::generate(const std::vector<float>& conditions, int64_t n,
                                   uint64_t seed) const {
  const int64_t k = static_cast<int64_t>(impl_->conditions.size());
  if (n < 0) throw ConditionError("number of showers must not be negative");
  if (static_cast<int64_t>(conditions.size()) != n * k)
    throw ConditionError("expected " + std::to_string(n) + " x " + std::to_string(k) +
                         " condition values, got " + std::to_string(conditions.size()));
  for (size_t i = 0; i < conditions.size(); ++i)
    if (!std::isfinite(conditions[i]))
      throw ConditionError("conditions are not finite (first in event " +
                           std::to_string(i / std::max<int64_t>(k, 1)) + ")");
  at::Tensor noise;
  {
    c10::InferenceMode guard;
    // The same generator and kernel as Python's torch.Generator().manual_seed(seed): the noise,
    // hence the showers, are those of Python's decode for this seed.
    at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(seed);
    noise = at::randn({n, impl_->latent_dim}, generator, at::kFloat).contiguous();
  }
  return decode(noise.data_ptr<float>(), conditions.data(), n);
}

void set_threads(int threads) {
  if (threads < 1) throw Error("threads must be at least 1, got " + std::to_string(threads));
  at::set_num_threads(threads);
}

}  // namespace caloforge
