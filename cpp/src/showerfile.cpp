// caloforge::ShowerFileWriter (see showerfile.hpp).
#include "caloforge/showerfile.hpp"

#include <hdf5.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

namespace caloforge {
namespace {

void check(herr_t status, const std::string& what) {
  if (status < 0) throw Error("HDF5 failed to " + what);
}

hid_t check_id(hid_t id, const std::string& what) {
  if (id < 0) throw Error("HDF5 failed to " + what);
  return id;
}

void write_string_attr(hid_t object, const char* name, const std::string& value) {
  hid_t type = check_id(H5Tcopy(H5T_C_S1), "copy a string type");
  H5Tset_size(type, H5T_VARIABLE);
  H5Tset_cset(type, H5T_CSET_UTF8);
  hid_t space = H5Screate(H5S_SCALAR);
  hid_t attr = check_id(H5Acreate2(object, name, type, space, H5P_DEFAULT, H5P_DEFAULT),
                        std::string("create attribute ") + name);
  const char* text = value.c_str();
  check(H5Awrite(attr, type, &text), std::string("write attribute ") + name);
  H5Aclose(attr);
  H5Sclose(space);
  H5Tclose(type);
}

void write_int_attr(hid_t object, const char* name, int64_t value) {
  if (H5Aexists(object, name) > 0) H5Adelete(object, name);
  hid_t space = H5Screate(H5S_SCALAR);
  hid_t attr = check_id(H5Acreate2(object, name, H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT),
                        std::string("create attribute ") + name);
  check(H5Awrite(attr, H5T_NATIVE_INT64, &value), std::string("write attribute ") + name);
  H5Aclose(attr);
  H5Sclose(space);
}

// An extendible (0, columns) dataset, chunked and compressed as caloforge's own writer does.
hid_t create_table(hid_t file, const char* name, hid_t type, hsize_t columns, hsize_t chunk_rows) {
  hsize_t dims[2] = {0, columns}, max[2] = {H5S_UNLIMITED, columns};
  hsize_t chunk[2] = {std::max<hsize_t>(chunk_rows, 1), std::max<hsize_t>(columns, 1)};
  hid_t space = H5Screate_simple(2, dims, max);
  hid_t props = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_chunk(props, 2, chunk);
  H5Pset_shuffle(props);
  H5Pset_deflate(props, 4);
  hid_t set = check_id(H5Dcreate2(file, name, type, space, H5P_DEFAULT, props, H5P_DEFAULT),
                       std::string("create dataset ") + name);
  H5Pclose(props);
  H5Sclose(space);
  return set;
}

template <typename T>
void append_rows(hid_t set, hid_t memtype, const T* data, hsize_t first, hsize_t rows,
                 hsize_t columns) {
  hsize_t size[2] = {first + rows, columns};
  check(H5Dset_extent(set, size), "extend a dataset");
  hid_t file_space = H5Dget_space(set);
  hsize_t start[2] = {first, 0}, count[2] = {rows, columns};
  H5Sselect_hyperslab(file_space, H5S_SELECT_SET, start, nullptr, count, nullptr);
  hid_t mem_space = H5Screate_simple(2, count, nullptr);
  check(H5Dwrite(set, memtype, mem_space, file_space, H5P_DEFAULT, data), "write rows");
  H5Sclose(mem_space);
  H5Sclose(file_space);
}

}  // namespace

ShowerFileWriter::ShowerFileWriter(const std::string& path, const Model& model, uint64_t seed,
                                   int64_t n_planned, const std::string& producer_json,
                                   bool overwrite)
    : model_(model), path_(path), partial_(path + ".partial"), planned_(n_planned) {
  namespace fs = std::filesystem;
  for (const auto& existing : {path_, partial_})
    if (fs::exists(existing) && !overwrite)
      throw Error(existing + " exists; use --overwrite to replace it");
  auto parent = fs::path(path_).parent_path();
  if (!parent.empty() && !fs::is_directory(parent))
    throw Error("output folder " + parent.string() + " does not exist");
  fs::remove(path_);
  fs::remove(partial_);
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // errors become exceptions, not prints
  file_ = check_id(H5Fcreate(partial_.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT),
                   "create " + partial_);
  const hsize_t n_cells = static_cast<hsize_t>(model.n_cells());
  const hsize_t k = model.conditions().size();
  showers_ = create_table(file_, "showers", H5T_IEEE_F32LE, n_cells,
                          std::max<hsize_t>(1, (1 << 20) / (4 * n_cells)));
  energies_ = create_table(file_, "incident_energies", H5T_IEEE_F64LE, 1, 4096);
  conditions_ = create_table(file_, "conditions", H5T_IEEE_F64LE, k, 4096);
  std::string names;
  for (const auto& c : model.conditions()) names += (names.empty() ? "" : ",") + c.name;
  write_string_attr(conditions_, "names", names);
  write_string_attr(file_, "detector", model.detector_yaml());
  write_string_attr(file_, "producer", producer_json);
  write_string_attr(file_, "cell_order", model.cell_order());
  write_string_attr(file_, "energy_unit", "visible MeV");
  write_string_attr(file_, "caloforge_version", model.caloforge_version());
  write_int_attr(file_, "seed", static_cast<int64_t>(seed));
  write_int_attr(file_, "n_committed", 0);
  write_int_attr(file_, "n_planned", n_planned);
  check(H5Fflush(file_, H5F_SCOPE_GLOBAL), "flush " + partial_);
}

void ShowerFileWriter::append(const std::vector<float>& showers,
                              const std::vector<float>& conditions, int64_t n) {
  if (file_ < 0) throw Error("the shower file " + path_ + " is closed");
  const int64_t k = static_cast<int64_t>(model_.conditions().size());
  if (static_cast<int64_t>(showers.size()) != n * model_.n_cells() ||
      static_cast<int64_t>(conditions.size()) != n * k)
    throw Error("append: showers or conditions do not hold " + std::to_string(n) + " events");
  std::vector<double> energies(n), wide(conditions.begin(), conditions.end());
  for (int64_t i = 0; i < n; ++i) energies[i] = model_.incident_energy(&conditions[i * k]);
  const hsize_t first = committed_;
  append_rows(showers_, H5T_NATIVE_FLOAT, showers.data(), first, n, model_.n_cells());
  append_rows(energies_, H5T_NATIVE_DOUBLE, energies.data(), first, n, 1);
  append_rows(conditions_, H5T_NATIVE_DOUBLE, wide.data(), first, n, k);
  check(H5Fflush(file_, H5F_SCOPE_GLOBAL), "flush " + partial_);
  committed_ += n;
  write_int_attr(file_, "n_committed", committed_);
  check(H5Fflush(file_, H5F_SCOPE_GLOBAL), "flush " + partial_);
}

void ShowerFileWriter::close() {
  for (int64_t* set : {&showers_, &energies_, &conditions_})
    if (*set >= 0) H5Dclose(*set), *set = -1;
  if (file_ >= 0) H5Fclose(file_), file_ = -1;
}

std::string ShowerFileWriter::finish() {
  close();
  if (committed_ < planned_) return partial_;
  std::filesystem::rename(partial_, path_);
  return path_;
}

ShowerFileWriter::~ShowerFileWriter() { close(); }

}  // namespace caloforge
