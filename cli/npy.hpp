// A small NumPy .npy reader and writer (format versions 1.0, 2.0 and 3.0).
//
// Supported: little-endian '<f4', '<f8', '<i4', '<i8', '<f2', '<u2' (and '|b1', read for
// completeness but accepted by no command, so not advertised), C or Fortran
// order (Fortran-order data is transposed to C order on reading), and arrays
// inside .npz archives (np.savez, stored or deflated; see read_npz).
// Every malformed file (bad magic, truncated header, a header that is not a
// dict, an unsupported dtype such as '>f4' or 'O', data shorter or longer than
// the shape says, a broken archive) throws npy_error with a one-line message
// that names the file and the problem. Nothing here aborts on bad input.
//
// Why our own reader rather than xtensor's xnpy.hpp (Debian libxtensor-dev):
// it is small (one file, no xtensor containers in the CLI), it reads .npz and
// Fortran order, its errors name the file, the key and the value (xnpy throws
// generic runtime_errors), and it is fuzzed here (fuzz/fuzz_npy.cpp, with
// every finding a unit test in npy_test.cpp) -- a library we do not fuzz
// would be the larger unknown on untrusted files.
#pragma once

#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace xent::npy {

class npy_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// f16: IEEE half ('<f2'); u16: '<u2', which is how bfloat16 arrays travel
// (NumPy has no bfloat16: the bit patterns, e.g. t.view(torch.int16).numpy()
// or .view(np.uint16)).
enum class dtype { f32, f64, i32, i64, b1, f16, u16 };

std::string to_string(dtype t);  // "float32", "float64", "int32", "int64", "bool", "float16", "uint16"
std::size_t size_of(dtype t);
std::string descr_of(dtype t);   // "<f4", ...

// An owning array: C-order elements, little-endian, shape () for a scalar.
struct array {
  dtype type = dtype::f32;
  std::vector<std::int64_t> shape;
  std::vector<unsigned char> bytes;  // numel * size_of(type)

  std::int64_t numel() const;
  std::string shape_string() const;  // "[3, 5]"
  // Typed copies of the elements (the stored type must match exactly).
  std::vector<float> as_f32() const;
  std::vector<double> as_f64() const;
  std::vector<std::int32_t> as_i32() const;
  std::vector<std::int64_t> as_i64() const;
  std::vector<std::uint16_t> as_u16() const;
  // float16 (or, from u16, bfloat16 bit patterns) widened to float32: exact,
  // every value of both formats is a float32.
  std::vector<float> f16_as_f32() const;
  std::vector<float> bf16_bits_as_f32() const;
};

// One IEEE half / bfloat16 bit pattern as the float32 of the same value.
float half_to_float(std::uint16_t bits);
float bfloat16_to_float(std::uint16_t bits);

// Parses a whole .npy file held in memory; `name` is used in messages.
array parse(std::span<const unsigned char> file, const std::string& name);
// Reads and parses a file.
array read(const std::string& path);

// The names of the arrays in a .npz archive (without ".npy"), in archive order.
std::vector<std::string> npz_names(const std::string& path);
// One array of a .npz archive: `name` (without ".npy"), or, when `name` is
// empty, the only array. Throws npy_error naming the archive's arrays when
// the choice is ambiguous or the name is absent.
array read_npz(const std::string& path, const std::string& name);
// "file.npy", "file.npz" or "file.npz:name": .npz archives (by extension) go
// through read_npz, with `fallback_name` chosen when no name is given and the
// archive holds it (e.g. "logits" for --logits dump.npz).
array read_any(const std::string& spec, const std::string& fallback_name = "");

// Serialises an array (version 1.0, or 2.0 when the header needs it).
std::vector<unsigned char> serialize(const array& a);
// Writes a file; throws npy_error naming the file when that fails.
void write(const std::string& path, const array& a);

// Convenience constructors.
array make(const std::vector<float>& v, std::vector<std::int64_t> shape);
array make(const std::vector<double>& v, std::vector<std::int64_t> shape);
array make(const std::vector<std::int32_t>& v, std::vector<std::int64_t> shape);
array make(const std::vector<std::int64_t>& v, std::vector<std::int64_t> shape);
// 16-bit patterns stored as `t` (f16, or u16 for bfloat16 bit patterns).
array make(const std::vector<std::uint16_t>& v, std::vector<std::int64_t> shape, dtype t);

}  // namespace xent::npy
