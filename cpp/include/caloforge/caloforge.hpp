// caloforge C++ library: trained shower models from caloforge, run by libtorch.
//
// A model is an AOTInductor package written by `caloforge export MODEL --out model.pt2`. It maps
// standard normal noise and physical conditions to showers in visible MeV, with caloforge's
// preprocessing inside; the package's metadata names the detector, the cells, the conditions and
// the ranges they were trained on. Which model runs is decided at run time by its path.
//
//   caloforge::Model model("lhcb-ecal-wgan.pt2");
//   std::vector<float> conditions = {...};              // n rows of model.conditions().size()
//   std::vector<float> cells = model.generate(conditions, n, /*seed=*/1);  // n rows of n_cells
//
// generate(conditions, n, seed) equals Python's
//   model.decode(torch.randn(n, latent, generator=torch.Generator().manual_seed(seed)), conditions)
// to float tolerance: the noise comes from the same generator (torch's CPU Mersenne twister).
// Every member function is const and may be called from several threads at once.
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace caloforge {

// Every error of the library; the message is one line, the words of caloforge's Python errors.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
// The file is missing, corrupt, or not a caloforge model package.
class ModelFileError : public Error {
 public:
  using Error::Error;
};
// The model was trained for another detector than the caller's.
class DetectorMismatch : public Error {
 public:
  using Error::Error;
};
// Conditions of the wrong size, not finite, or names the model does not have.
class ConditionError : public Error {
 public:
  using Error::Error;
};

struct Condition {
  std::string name;  // px, py, pz, x, y, energy, ...
  std::string unit;  // MeV, mm, ...
  double min;        // range of the training data
  double max;
};

class Model {
 public:
  // Loads a package (.pt2), or the model.pt2 inside a directory. runners: how many calls may
  // run at once (each holds its own activations); further calls wait for a free one.
  explicit Model(const std::string& path, int runners = 1);
  ~Model();
  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;

  const std::string& path() const;
  const std::string& detector() const;       // the detector's name
  const std::string& detector_yaml() const;  // its full description, as caloforge writes it
  const std::string& producer() const;       // JSON: family, name, version
  const std::string& cell_order() const;
  const std::string& caloforge_version() const;  // of the caloforge that exported it
  const std::vector<Condition>& conditions() const;
  int64_t n_cells() const;
  int64_t latent_dim() const;

  // Throws DetectorMismatch unless the model was trained for `name`.
  void require_detector(const std::string& name) const;
  // Index of a condition by name, or throws ConditionError.
  int index_of(const std::string& condition) const;
  // True when every condition of the row lies in its training range.
  bool in_training_range(const float* row) const;
  // Incident kinetic energy (MeV) of a row: the energy condition, or |p|.
  double incident_energy(const float* row) const;

  // n showers (n * n_cells floats, event-major, the detector's cell order) for n rows of
  // conditions (n * conditions().size() floats). Noise from a generator seeded with `seed`.
  std::vector<float> generate(const std::vector<float>& conditions, int64_t n,
                              uint64_t seed) const;
  // The deterministic map itself: noise (n * latent_dim) and conditions to showers.
  std::vector<float> decode(const float* noise, const float* conditions, int64_t n) const;

  // Largest batch handed to the network at once; generate splits larger requests.
  static constexpr int64_t kMaxBatch = 10000;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Threads each network call may use (libtorch's intra-op pool, process-wide).
void set_threads(int threads);

}  // namespace caloforge
