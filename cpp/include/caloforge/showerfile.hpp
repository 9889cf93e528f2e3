// Writing caloforge shower files from C++ (HDF5 C API).
//
// The layout is caloforge's (a superset of CaloChallenge's): incident_energies (N, 1) MeV,
// showers (N, n_cells) float32 visible MeV, conditions (N, k) with attribute names, and the file
// attributes detector (YAML), producer (JSON), seed, cell_order, energy_unit, n_committed and
// n_planned, so `caloforge info`, `evaluate` and `convert --to calochallenge` read it as they read
// a file of caloforge generate. It is written as PATH.partial, n_committed raised after each
// flushed append, and renamed to PATH once every planned event is in.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "caloforge/caloforge.hpp"

namespace caloforge {

class ShowerFileWriter {
 public:
  // Refuses an existing PATH or PATH.partial unless overwrite.
  ShowerFileWriter(const std::string& path, const Model& model, uint64_t seed, int64_t n_planned,
                   const std::string& producer_json, bool overwrite = false);
  ~ShowerFileWriter();  // leaves PATH.partial (with its committed events) if not finished
  ShowerFileWriter(const ShowerFileWriter&) = delete;
  ShowerFileWriter& operator=(const ShowerFileWriter&) = delete;

  void append(const std::vector<float>& showers, const std::vector<float>& conditions,
              int64_t n);
  int64_t committed() const { return committed_; }
  // Closes the file and, when every planned event is in, gives it its final name.
  std::string finish();

 private:
  const Model& model_;
  std::string path_, partial_;
  int64_t file_ = -1, showers_ = -1, energies_ = -1, conditions_ = -1;
  int64_t committed_ = 0, planned_ = 0;
  void close();
};

}  // namespace caloforge
