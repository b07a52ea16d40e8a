#include "npy.hpp"

#include <zlib.h>

#include <algorithm>
#include <bit>
#include <cctype>
#include <cmath>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <sstream>

namespace xent::npy {

static_assert(std::endian::native == std::endian::little,
              "the .npy reader assumes a little-endian host");

std::string to_string(dtype t) {
  switch (t) {
    case dtype::f32: return "float32";
    case dtype::f64: return "float64";
    case dtype::i32: return "int32";
    case dtype::i64: return "int64";
    case dtype::b1: return "bool";
    case dtype::f16: return "float16";
    case dtype::u16: return "uint16";
  }
  return "unknown";
}

std::size_t size_of(dtype t) {
  switch (t) {
    case dtype::f32: return 4;
    case dtype::f64: return 8;
    case dtype::i32: return 4;
    case dtype::i64: return 8;
    case dtype::b1: return 1;
    case dtype::f16: return 2;
    case dtype::u16: return 2;
  }
  return 0;
}

std::string descr_of(dtype t) {
  switch (t) {
    case dtype::f32: return "<f4";
    case dtype::f64: return "<f8";
    case dtype::i32: return "<i4";
    case dtype::i64: return "<i8";
    case dtype::b1: return "|b1";
    case dtype::f16: return "<f2";
    case dtype::u16: return "<u2";
  }
  return "?";
}

std::int64_t array::numel() const {
  std::int64_t n = 1;
  for (auto e : shape) n *= e;
  return n;
}

namespace {

std::string shape_str(const std::vector<std::int64_t>& s) {
  std::ostringstream o;
  o << '[';
  for (std::size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
  o << ']';
  return o.str();
}

template <class T>
std::vector<T> typed(const array& a, dtype want) {
  if (a.type != want)
    throw npy_error("array holds " + to_string(a.type) + ", not " + to_string(want));
  std::vector<T> v(a.bytes.size() / sizeof(T));
  if (!v.empty()) std::memcpy(v.data(), a.bytes.data(), v.size() * sizeof(T));
  return v;
}

// ---- A parser for the header: a Python dict literal of str keys and
// str / bool / tuple-of-int values. Anything else is parsed far enough to
// name it in the message.

struct entry;

struct value {
  enum kind_t { string, boolean, integer, tuple, list, dict, none, other } kind = other;
  std::string s;
  bool b = false;
  std::int64_t i = 0;
  std::vector<value> items;                         // tuple, list
  // dict. A struct, not std::pair<std::string, value>: pair needs a complete
  // value here, which libstdc++ tolerates under gcc but not under clang.
  std::vector<entry> keys;
};

struct entry {
  std::string key;
  value item;
};

// A string from the header as it appears in a message: quoted, control and
// non-ASCII bytes as \xNN, at most 40 characters -- the header is arbitrary
// bytes and messages are one line (found by fuzz/fuzz_npy: a key holding a
// newline split the message).
std::string header_string(const std::string& s) {
  std::string r = "'";
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (i == 40) {
      r += "...";
      break;
    }
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      r += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      r += buf;
    }
  }
  return r + "'";
}

std::string kind_name(value::kind_t k) {
  switch (k) {
    case value::string: return "a string";
    case value::boolean: return "a bool";
    case value::integer: return "an integer";
    case value::tuple: return "a tuple";
    case value::list: return "a list";
    case value::dict: return "a dict";
    case value::none: return "None";
    case value::other: return "something else";
  }
  return "?";
}

class header_parser {
 public:
  header_parser(std::string_view text, const std::string& name) : t_(text), name_(name) {}

  value parse_header() {
    skip_ws();
    if (at_end()) fail("the header is empty (expected a dict)");
    if (peek() != '{') fail("the header is not a dict (it starts with " + show(peek()) + ")");
    value v = parse_value(0);
    skip_ws();
    if (!at_end()) fail("unexpected " + show(peek()) + " after the header dict");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw npy_error(name_ + ": malformed .npy header: " + what);
  }
  bool at_end() const { return pos_ >= t_.size(); }
  char peek() const { return t_[pos_]; }
  static std::string show(char c) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7f) return std::string("'") + c + "'";
    char buf[16];
    std::snprintf(buf, sizeof buf, "byte 0x%02x", u);
    return buf;
  }
  void skip_ws() {
    while (!at_end() && (peek() == ' ' || peek() == '\t' || peek() == '\n' || peek() == '\r'))
      ++pos_;
  }
  void expect(char c, const char* context) {
    skip_ws();
    if (at_end()) fail(std::string("the header ends inside ") + context);
    if (peek() != c)
      fail(std::string("expected '") + c + "' in " + context + ", found " + show(peek()));
    ++pos_;
  }

  value parse_value(int depth) {
    if (depth > 32) fail("the header nests too deeply");
    skip_ws();
    if (at_end()) fail("the header ends where a value was expected");
    const char c = peek();
    if (c == '\'' || c == '"') return parse_string();
    if (c == '{') return parse_dict(depth);
    if (c == '(' || c == '[') return parse_sequence(depth);
    if (c == '-' || c == '+' || (c >= '0' && c <= '9')) return parse_int();
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      const std::size_t start = pos_;
      while (!at_end() && (std::isalnum(static_cast<unsigned char>(peek())) || peek() == '_')) ++pos_;
      const std::string_view word = t_.substr(start, pos_ - start);
      value v;
      if (word == "True" || word == "False") {
        v.kind = value::boolean;
        v.b = word == "True";
      } else if (word == "None") {
        v.kind = value::none;
      } else {
        fail("unexpected name '" + std::string(word) + "'");
      }
      return v;
    }
    fail("unexpected " + show(c));
  }

  value parse_string() {
    const char quote = peek();
    ++pos_;
    value v;
    v.kind = value::string;
    while (true) {
      if (at_end()) fail("the header ends inside a string");
      const char c = peek();
      ++pos_;
      if (c == quote) break;
      if (c == '\\') {
        if (at_end()) fail("the header ends inside a string");
        v.s += peek();
        ++pos_;
        continue;
      }
      v.s += c;
    }
    return v;
  }

  value parse_int() {
    const std::size_t start = pos_;
    bool negative = false;
    if (peek() == '-' || peek() == '+') {
      negative = peek() == '-';
      ++pos_;
    }
    if (at_end() || !(peek() >= '0' && peek() <= '9')) fail("a sign without digits");
    std::int64_t n = 0;
    while (!at_end() && peek() >= '0' && peek() <= '9') {
      const int d = peek() - '0';
      if (n > (std::numeric_limits<std::int64_t>::max() - d) / 10) {
        // Quote the digits only (the bytes after them may be anything).
        std::size_t end = pos_;
        while (end < t_.size() && t_[end] >= '0' && t_[end] <= '9') ++end;
        const std::size_t len = end - start;
        fail("the integer " + std::string(t_.substr(start, std::min<std::size_t>(len, 40))) +
             (len > 40 ? "..." : "") + " is too large (more than 64 bits)");
      }
      n = n * 10 + d;
      ++pos_;
    }
    if (!at_end() && (peek() == 'L' || peek() == 'l')) ++pos_;  // Python 2 longs
    if (!at_end() && (peek() == '.' || peek() == 'e' || peek() == 'E'))
      fail("a non-integer number where an integer was expected");
    value v;
    v.kind = value::integer;
    v.i = negative ? -n : n;
    return v;
  }

  value parse_sequence(int depth) {
    const char open = peek();
    const char close = open == '(' ? ')' : ']';
    ++pos_;
    value v;
    v.kind = open == '(' ? value::tuple : value::list;
    const char* context = open == '(' ? "a tuple" : "a list";
    skip_ws();
    while (true) {
      skip_ws();
      if (at_end()) fail(std::string("the header ends inside ") + context);
      if (peek() == close) {
        ++pos_;
        break;
      }
      v.items.push_back(parse_value(depth + 1));
      skip_ws();
      if (at_end()) fail(std::string("the header ends inside ") + context);
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() != close)
        fail(std::string("expected ',' or '") + close + "' in " + context + ", found " + show(peek()));
    }
    return v;
  }

  value parse_dict(int depth) {
    ++pos_;  // '{'
    value v;
    v.kind = value::dict;
    while (true) {
      skip_ws();
      if (at_end()) fail("the header ends inside the dict (no closing '}')");
      if (peek() == '}') {
        ++pos_;
        break;
      }
      if (peek() != '\'' && peek() != '"')
        fail("expected a quoted key in the dict, found " + show(peek()));
      std::string key = parse_string().s;
      expect(':', "the dict");
      value item = parse_value(depth + 1);
      for (const auto& [k, _] : v.keys)
        if (k == key) fail("the key " + header_string(key) + " appears twice");
      v.keys.push_back({std::move(key), std::move(item)});
      skip_ws();
      if (at_end()) fail("the header ends inside the dict (no closing '}')");
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() != '}') fail("expected ',' or '}' in the dict, found " + show(peek()));
    }
    return v;
  }

  std::string_view t_;
  const std::string& name_;
  std::size_t pos_ = 0;
};

dtype parse_descr(const value& v, const std::string& name) {
  if (v.kind != value::string)
    throw npy_error(name + ": unsupported dtype: 'descr' is " + kind_name(v.kind) +
                    " (structured arrays are not supported; use float32, float64, float16, int32, int64 "
                    "or bool)");
  const std::string& d = v.s;
  if (d == "<f4") return dtype::f32;
  if (d == "<f8") return dtype::f64;
  if (d == "<i4") return dtype::i32;
  if (d == "<i8") return dtype::i64;
  if (d == "<f2") return dtype::f16;
  if (d == "<u2") return dtype::u16;
  if (d == "|b1" || d == "<b1" || d == ">b1" || d == "=b1") return dtype::b1;
  std::string why;
  if (!d.empty() && d[0] == '>')
    why = " (big-endian; convert with arr.astype(arr.dtype.newbyteorder('<')))";
  else if (d == "|O" || d == "O" || d == "<O")
    why = " (Python objects)";
  throw npy_error(name + ": unsupported dtype " + header_string(d) + why +
                  "; supported: <f4 (float32), <f8 (float64), <f2 (float16), <i4 (int32), <i8 (int64), "
                  "<u2 (uint16: bfloat16 bit patterns)");
}

std::uint32_t read_le(const unsigned char* p, int n) {
  std::uint32_t v = 0;
  for (int i = n; i-- > 0;) v = (v << 8) | p[i];
  return v;
}

// Column-major (Fortran-order) elements to row-major: element (i0, .., ik)
// sits at sum_d i_d * prod_{e<d} shape_e in the input.
std::vector<unsigned char> to_c_order(const std::vector<unsigned char>& in, const std::vector<std::int64_t>& shape,
                                      std::size_t item) {
  const std::size_t rank = shape.size();
  std::vector<unsigned char> out(in.size());
  if (rank <= 1 || in.empty()) return in;
  std::vector<std::size_t> fstride(rank), idx(rank, 0);
  std::size_t s = 1;
  for (std::size_t d = 0; d < rank; ++d) {
    fstride[d] = s;
    s *= static_cast<std::size_t>(shape[d]);
  }
  const std::size_t n = in.size() / item;
  std::size_t src = 0;  // Fortran offset of idx, in elements
  for (std::size_t i = 0; i < n; ++i) {
    std::memcpy(out.data() + i * item, in.data() + src * item, item);
    for (std::size_t d = rank; d-- > 0;) {  // C-order odometer
      if (++idx[d] < static_cast<std::size_t>(shape[d])) {
        src += fstride[d];
        break;
      }
      src -= fstride[d] * (idx[d] - 1);
      idx[d] = 0;
    }
  }
  return out;
}

}  // namespace

std::string array::shape_string() const { return shape_str(shape); }
std::vector<float> array::as_f32() const { return typed<float>(*this, dtype::f32); }
std::vector<double> array::as_f64() const { return typed<double>(*this, dtype::f64); }
std::vector<std::int32_t> array::as_i32() const { return typed<std::int32_t>(*this, dtype::i32); }
std::vector<std::int64_t> array::as_i64() const { return typed<std::int64_t>(*this, dtype::i64); }
std::vector<std::uint16_t> array::as_u16() const { return typed<std::uint16_t>(*this, dtype::u16); }

float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const int exponent = (h >> 10) & 0x1f;
  const std::uint32_t mantissa = h & 0x3ffu;
  float magnitude;
  if (exponent == 0x1f)  // inf or NaN (payload kept in the top mantissa bits)
    magnitude = std::bit_cast<float>(0x7f800000u | (mantissa << 13));
  else if (exponent == 0)  // zero or subnormal: mantissa * 2^-24, exact
    magnitude = std::ldexp(static_cast<float>(mantissa), -24);
  else
    magnitude = std::bit_cast<float>(static_cast<std::uint32_t>(exponent - 15 + 127) << 23 | (mantissa << 13));
  return std::bit_cast<float>(std::bit_cast<std::uint32_t>(magnitude) | sign);
}

float bfloat16_to_float(std::uint16_t b) { return std::bit_cast<float>(static_cast<std::uint32_t>(b) << 16); }

std::vector<float> array::f16_as_f32() const {
  const auto bits = typed<std::uint16_t>(*this, dtype::f16);
  std::vector<float> v(bits.size());
  for (std::size_t i = 0; i < bits.size(); ++i) v[i] = half_to_float(bits[i]);
  return v;
}

std::vector<float> array::bf16_bits_as_f32() const {
  const auto bits = as_u16();
  std::vector<float> v(bits.size());
  for (std::size_t i = 0; i < bits.size(); ++i) v[i] = bfloat16_to_float(bits[i]);
  return v;
}

array parse(std::span<const unsigned char> f, const std::string& name) {
  static constexpr unsigned char magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
  if (f.size() < 6 || std::memcmp(f.data(), magic, 6) != 0)
    throw npy_error(name + ": not a .npy file (bad magic: expected \\x93NUMPY" +
                    std::string(f.size() < 6 ? ", the file has only " + std::to_string(f.size()) +
                                                   " bytes"
                                             : "") +
                    ")");
  if (f.size() < 8) throw npy_error(name + ": truncated .npy header (no version bytes)");
  const int major = f[6], minor = f[7];
  if (!((major == 1 || major == 2 || major == 3) && minor == 0))
    throw npy_error(name + ": unsupported .npy format version " + std::to_string(major) + "." +
                    std::to_string(minor) + " (supported: 1.0, 2.0, 3.0)");
  const int len_bytes = major == 1 ? 2 : 4;
  const std::size_t prefix = 8 + static_cast<std::size_t>(len_bytes);
  if (f.size() < prefix) throw npy_error(name + ": truncated .npy header (no header length)");
  const std::size_t header_len = read_le(f.data() + 8, len_bytes);
  if (f.size() - prefix < header_len)
    throw npy_error(name + ": truncated .npy header (it declares " + std::to_string(header_len) +
                    " bytes, the file has " + std::to_string(f.size() - prefix) + " after the prefix)");
  const std::string_view text(reinterpret_cast<const char*>(f.data() + prefix), header_len);

  const value header = header_parser(text, name).parse_header();
  const value *descr = nullptr, *fortran = nullptr, *shape = nullptr;
  for (const auto& [k, v] : header.keys) {
    if (k == "descr") descr = &v;
    else if (k == "fortran_order") fortran = &v;
    else if (k == "shape") shape = &v;
    else
      throw npy_error(name + ": malformed .npy header: unexpected key " + header_string(k) +
                      "' (expected descr, fortran_order, shape)");
  }
  if (!descr || !fortran || !shape)
    throw npy_error(name + ": malformed .npy header: missing key '" +
                    std::string(!descr ? "descr" : !fortran ? "fortran_order" : "shape") + "'");

  array a;
  a.type = parse_descr(*descr, name);
  if (fortran->kind != value::boolean)
    throw npy_error(name + ": malformed .npy header: 'fortran_order' is " + kind_name(fortran->kind) +
                    ", not True or False");
  if (shape->kind != value::tuple)
    throw npy_error(name + ": malformed .npy header: 'shape' is " + kind_name(shape->kind) +
                    ", not a tuple of integers");
  const std::size_t item = size_of(a.type);
  // Largest element count whose bytes fit in the file (and in memory).
  const std::size_t data_offset = prefix + header_len;
  const std::size_t available = f.size() - data_offset;
  // The element count and the byte size must fit in int64 -- counted over
  // the non-zero extents, as NumPy does ("array is too big"), so that an
  // empty (0, 2^62, 2^62) cannot overflow array::numel() or a consumer that
  // multiplies extents before it meets the zero.
  constexpr auto limit = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  std::uint64_t numel = 1, nonzero = 1;
  bool too_large = false;
  for (const value& e : shape->items) {
    if (e.kind != value::integer)
      throw npy_error(name + ": malformed .npy header: 'shape' contains " + kind_name(e.kind) +
                      ", not only integers");
    if (e.i < 0)
      throw npy_error(name + ": malformed .npy header: negative extent " + std::to_string(e.i) +
                      " in 'shape'");
    if (a.shape.size() == 32)
      throw npy_error(name + ": malformed .npy header: " + std::to_string(shape->items.size()) +
                      " dimensions (at most 32)");
    a.shape.push_back(e.i);
    const auto extent = static_cast<std::uint64_t>(e.i);
    if (extent == 0) {
      numel = 0;
    } else if (!too_large) {
      if (nonzero > limit / item / extent) too_large = true;
      else nonzero *= extent;
      numel *= extent;
    }
  }
  const std::string desc = "shape " + a.shape_string() + " of " + to_string(a.type);
  if (too_large)
    throw npy_error(name + ": the " + desc + " is too large (its byte size overflows a 64-bit integer)");
  const std::uint64_t nbytes = numel * item;
  if (nbytes > available)
    throw npy_error(name + ": data is truncated: the " + desc + " needs " + std::to_string(nbytes) +
                    " bytes, the file has " + std::to_string(available));
  if (nbytes < available)
    throw npy_error(name + ": " + std::to_string(available - nbytes) +
                    " unexpected bytes after the data (the " + desc + " needs " +
                    std::to_string(nbytes) + ")");
  a.bytes.assign(f.begin() + static_cast<std::ptrdiff_t>(data_offset), f.end());
  if (fortran->b) a.bytes = to_c_order(a.bytes, a.shape, item);
  return a;
}

namespace {
std::vector<unsigned char> read_bytes(const std::string& path);  // below, with the .npz reader
}  // namespace

array read(const std::string& path) { return parse(read_bytes(path), path); }

std::vector<unsigned char> serialize(const array& a) {
  std::string shape = "(";
  for (std::size_t i = 0; i < a.shape.size(); ++i)
    shape += (i ? ", " : "") + std::to_string(a.shape[i]);
  if (a.shape.size() == 1) shape += ",";
  shape += ")";
  std::string header =
      "{'descr': '" + descr_of(a.type) + "', 'fortran_order': False, 'shape': " + shape + ", }";
  // Version 1.0 while the header length fits in 16 bits; pad with spaces so
  // the data starts on a 64-byte boundary, and end with a newline.
  int version = 1;
  std::size_t prefix = 10;
  auto padded = [&] { return (prefix + header.size() + 1 + 63) / 64 * 64 - prefix; };
  if (padded() > 0xffff) {
    version = 2;
    prefix = 12;
  }
  const std::size_t len = padded();
  header.append(len - header.size() - 1, ' ');
  header += '\n';
  std::vector<unsigned char> out = {0x93, 'N', 'U', 'M', 'P', 'Y', static_cast<unsigned char>(version), 0};
  for (std::size_t i = 0; i < prefix - 8; ++i) out.push_back(static_cast<unsigned char>(len >> (8 * i)));
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), a.bytes.begin(), a.bytes.end());
  return out;
}

void write(const std::string& path, const array& a) {
  if (a.bytes.size() != static_cast<std::size_t>(a.numel()) * size_of(a.type))
    throw npy_error(path + ": internal error: array bytes do not match its shape");
  const auto bytes = serialize(a);
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "wb"), &std::fclose);
  if (!file) throw npy_error(path + ": cannot write: " + std::strerror(errno));
  if (std::fwrite(bytes.data(), 1, bytes.size(), file.get()) != bytes.size())
    throw npy_error(path + ": write error: " + std::strerror(errno));
  if (std::fclose(file.release()) != 0) throw npy_error(path + ": write error: " + std::strerror(errno));
}

namespace {
template <class T>
array make_typed(const std::vector<T>& v, std::vector<std::int64_t> shape, dtype t) {
  array a;
  a.type = t;
  a.shape = std::move(shape);
  if (static_cast<std::int64_t>(v.size()) != a.numel())
    throw npy_error("npy::make: " + std::to_string(v.size()) + " values for shape " + a.shape_string());
  a.bytes.resize(v.size() * sizeof(T));
  if (!v.empty()) std::memcpy(a.bytes.data(), v.data(), a.bytes.size());
  return a;
}
}  // namespace

array make(const std::vector<float>& v, std::vector<std::int64_t> s) {
  return make_typed(v, std::move(s), dtype::f32);
}
array make(const std::vector<double>& v, std::vector<std::int64_t> s) {
  return make_typed(v, std::move(s), dtype::f64);
}
array make(const std::vector<std::int32_t>& v, std::vector<std::int64_t> s) {
  return make_typed(v, std::move(s), dtype::i32);
}
array make(const std::vector<std::int64_t>& v, std::vector<std::int64_t> s) {
  return make_typed(v, std::move(s), dtype::i64);
}
array make(const std::vector<std::uint16_t>& v, std::vector<std::int64_t> s, dtype t) {
  if (size_of(t) != 2) throw npy_error("npy::make: 16-bit patterns stored as " + to_string(t));
  return make_typed(v, std::move(s), t);
}

}  // namespace xent::npy

// ---- .npz: a zip archive of .npy files (np.savez / np.savez_compressed) ----

namespace xent::npy {
namespace {

std::uint64_t le(const unsigned char* p, int n) {
  std::uint64_t v = 0;
  for (int i = n; i-- > 0;) v = (v << 8) | p[i];
  return v;
}

struct zip_entry {
  std::string name;
  std::uint16_t method = 0;
  std::uint64_t compressed = 0, size = 0, local_offset = 0;
};

std::vector<unsigned char> read_bytes(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw npy_error(path + ": is a directory");
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!file) throw npy_error(path + ": cannot open: " + std::strerror(errno));
  std::vector<unsigned char> bytes;
  unsigned char buf[1 << 16];
  while (true) {
    const std::size_t n = std::fread(buf, 1, sizeof buf, file.get());
    bytes.insert(bytes.end(), buf, buf + n);
    if (n < sizeof buf) break;
  }
  if (std::ferror(file.get())) throw npy_error(path + ": read error: " + std::strerror(errno));
  return bytes;
}

// The central directory (with zip64 records, which np.savez writes).
std::vector<zip_entry> zip_directory(const std::vector<unsigned char>& z, const std::string& path) {
  auto bad = [&](const std::string& why) { return npy_error(path + ": not a valid .npz archive: " + why); };
  if (z.size() < 22) throw bad("too short for a zip file");
  std::size_t eocd = std::string::npos;
  for (std::size_t i = z.size() - 22 + 1; i-- > 0 && z.size() - i <= 22 + 65535;)
    if (le(&z[i], 4) == 0x06054b50) {
      eocd = i;
      break;
    }
  if (eocd == std::string::npos) throw bad("no end-of-central-directory record");
  std::uint64_t count = le(&z[eocd + 10], 2), dir_size = le(&z[eocd + 12], 4), dir_offset = le(&z[eocd + 16], 4);
  if ((count == 0xffff || dir_size == 0xffffffff || dir_offset == 0xffffffff) && eocd >= 20 &&
      le(&z[eocd - 20], 4) == 0x07064b50) {
    const std::uint64_t z64 = le(&z[eocd - 20 + 8], 8);
    if (z64 + 56 > z.size() || le(&z[z64], 4) != 0x06064b50) throw bad("broken zip64 end record");
    count = le(&z[z64 + 32], 8);
    dir_size = le(&z[z64 + 40], 8);
    dir_offset = le(&z[z64 + 48], 8);
  }
  if (dir_offset > z.size() || dir_size > z.size() - dir_offset) throw bad("central directory out of range");
  std::vector<zip_entry> out;
  std::size_t p = dir_offset;
  for (std::uint64_t i = 0; i < count; ++i) {
    if (p + 46 > z.size() || le(&z[p], 4) != 0x02014b50) throw bad("broken central directory entry");
    zip_entry e;
    e.method = static_cast<std::uint16_t>(le(&z[p + 10], 2));
    e.compressed = le(&z[p + 20], 4);
    e.size = le(&z[p + 24], 4);
    const std::size_t name_len = le(&z[p + 28], 2), extra_len = le(&z[p + 30], 2), comment_len = le(&z[p + 32], 2);
    e.local_offset = le(&z[p + 42], 4);
    if (p + 46 + name_len + extra_len + comment_len > z.size()) throw bad("broken central directory entry");
    e.name.assign(reinterpret_cast<const char*>(&z[p + 46]), name_len);
    // zip64 extra field: the 64-bit values of the fields that read 0xffffffff, in order.
    for (std::size_t x = p + 46 + name_len; x + 4 <= p + 46 + name_len + extra_len;) {
      const std::uint64_t id = le(&z[x], 2), len = le(&z[x + 2], 2);
      if (id == 0x0001) {
        std::size_t q = x + 4;
        auto take = [&](std::uint64_t& field) {
          if (field == 0xffffffff && q + 8 <= x + 4 + len) {
            field = le(&z[q], 8);
            q += 8;
          }
        };
        take(e.size);
        take(e.compressed);
        take(e.local_offset);
      }
      x += 4 + len;
    }
    out.push_back(std::move(e));
    p += 46 + name_len + extra_len + comment_len;
  }
  return out;
}

std::vector<unsigned char> zip_extract(const std::vector<unsigned char>& z, const zip_entry& e,
                                       const std::string& path) {
  const std::string what = path + ": " + e.name;
  if (e.local_offset + 30 > z.size() || le(&z[e.local_offset], 4) != 0x04034b50)
    throw npy_error(what + ": broken local header in the .npz archive");
  const std::uint64_t start = e.local_offset + 30 + le(&z[e.local_offset + 26], 2) + le(&z[e.local_offset + 28], 2);
  if (start > z.size() || e.compressed > z.size() - start)
    throw npy_error(what + ": data out of range in the .npz archive");
  const unsigned char* data = z.data() + start;
  if (e.method == 0) return {data, data + e.compressed};
  if (e.method != 8)
    throw npy_error(what + ": unsupported compression method " + std::to_string(e.method) +
                    " (np.savez and np.savez_compressed write 0 and 8)");
  std::vector<unsigned char> out(e.size);
  z_stream s{};
  if (inflateInit2(&s, -MAX_WBITS) != Z_OK) throw npy_error(what + ": cannot start zlib");
  s.next_in = const_cast<unsigned char*>(data);
  s.avail_in = static_cast<uInt>(e.compressed);
  s.next_out = out.data();
  s.avail_out = static_cast<uInt>(out.size());
  const int rc = inflate(&s, Z_FINISH);
  const std::uint64_t produced = s.total_out;
  inflateEnd(&s);
  if (rc != Z_STREAM_END || produced != e.size) throw npy_error(what + ": corrupt deflate data in the .npz archive");
  return out;
}

std::string npy_name(const zip_entry& e) {
  const std::string& n = e.name;
  return n.size() > 4 && n.compare(n.size() - 4, 4, ".npy") == 0 ? n.substr(0, n.size() - 4) : n;
}

}  // namespace

std::vector<std::string> npz_names(const std::string& path) {
  std::vector<std::string> v;
  for (const auto& e : zip_directory(read_bytes(path), path)) v.push_back(npy_name(e));
  return v;
}

array read_npz(const std::string& path, const std::string& name) {
  const std::vector<unsigned char> z = read_bytes(path);
  const std::vector<zip_entry> entries = zip_directory(z, path);
  std::string names;
  for (const auto& e : entries) names += (names.empty() ? "" : ", ") + npy_name(e);
  const zip_entry* pick = nullptr;
  if (name.empty()) {
    if (entries.size() != 1)
      throw npy_error(path + ": the archive holds " + std::to_string(entries.size()) + " arrays (" + names +
                      "): name one as " + path + ":NAME");
    pick = &entries[0];
  } else {
    for (const auto& e : entries)
      if (npy_name(e) == name) pick = &e;
    if (!pick) throw npy_error(path + ": no array '" + name + "' in the archive (it holds: " + names + ")");
  }
  const std::vector<unsigned char> bytes = zip_extract(z, *pick, path);
  return parse(bytes, path + ":" + npy_name(*pick));
}

array read_any(const std::string& spec, const std::string& fallback_name) {
  auto ends_with = [](const std::string& s, const std::string& tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
  };
  std::string path = spec, name;
  if (const std::size_t at = spec.rfind(".npz:"); at != std::string::npos) {
    path = spec.substr(0, at + 4);
    name = spec.substr(at + 5);
  }
  if (!ends_with(path, ".npz")) return read(spec);
  if (name.empty() && !fallback_name.empty()) {
    const auto names = npz_names(path);
    if (names.size() > 1 && std::find(names.begin(), names.end(), fallback_name) != names.end()) name = fallback_name;
  }
  return read_npz(path, name);
}

}  // namespace xent::npy
