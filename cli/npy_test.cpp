// The .npy reader/writer: round trips, the header variants NumPy writes, and
// a clear npy_error (never a crash or another exception) for every malformed
// file, including truncations and random corruption of the header.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <unistd.h>
#include <string>
#include <vector>

#include "npy.hpp"

namespace {

using bytes = std::vector<unsigned char>;
using xent::npy::npy_error;

// A file with a given header text, version and payload.
bytes file_with(const std::string& header, const bytes& data = {}, int major = 1) {
  bytes f = {0x93, 'N', 'U', 'M', 'P', 'Y', static_cast<unsigned char>(major), 0};
  const std::size_t len = header.size();
  const int len_bytes = major == 1 ? 2 : 4;
  for (int i = 0; i < len_bytes; ++i) f.push_back(static_cast<unsigned char>(len >> (8 * i)));
  f.insert(f.end(), header.begin(), header.end());
  f.insert(f.end(), data.begin(), data.end());
  return f;
}

bytes zeros(std::size_t n) { return bytes(n, 0); }

// The message of the npy_error that parsing throws ("" when it parses).
std::string error_of(const bytes& f, const std::string& name = "x.npy") {
  try {
    xent::npy::parse(f, name);
  } catch (const npy_error& e) {
    return e.what();
  }
  return "";
}

#define EXPECT_NPY_ERROR(file, fragment)                                     \
  do {                                                                       \
    const std::string msg_ = error_of(file);                                 \
    EXPECT_NE(msg_.find("x.npy: "), std::string::npos) << msg_;              \
    EXPECT_NE(msg_.find(fragment), std::string::npos) << msg_;               \
    EXPECT_EQ(msg_.find('\n'), std::string::npos) << "one line: " << msg_;   \
  } while (0)

TEST(npy, round_trip_every_dtype_and_shape) {
  const std::vector<std::vector<std::int64_t>> shapes = {{}, {0}, {3}, {3, 5}, {2, 3, 4}, {2, 0, 3}};
  for (const auto& shape : shapes) {
    std::int64_t n = 1;
    for (auto e : shape) n *= e;
    std::vector<float> f(n);
    std::vector<double> d(n);
    std::vector<std::int32_t> i4(n);
    std::vector<std::int64_t> i8(n);
    for (std::int64_t k = 0; k < n; ++k) {
      f[k] = 0.5f * static_cast<float>(k) - 3.0f;
      d[k] = 1.0 / (1.0 + static_cast<double>(k));
      i4[k] = static_cast<std::int32_t>(k) - 7;
      i8[k] = (std::int64_t{1} << 40) + k;
    }
    for (const auto& a : {xent::npy::make(f, shape), xent::npy::make(d, shape), xent::npy::make(i4, shape),
                          xent::npy::make(i8, shape)}) {
      const bytes s = xent::npy::serialize(a);
      EXPECT_EQ((s[8] | (s[9] << 8)) + 10, static_cast<int>(s.size() - a.bytes.size()));
      EXPECT_EQ((s.size() - a.bytes.size()) % 64, 0u) << "data is 64-byte aligned";
      const auto b = xent::npy::parse(s, "rt.npy");
      EXPECT_EQ(b.type, a.type);
      EXPECT_EQ(b.shape, a.shape);
      EXPECT_EQ(b.bytes, a.bytes);
    }
  }
  EXPECT_EQ(xent::npy::parse(xent::npy::serialize(xent::npy::make(std::vector<float>{1.5f, -2}, {2})), "a")
                .as_f32(),
            (std::vector<float>{1.5f, -2}));
}

// float16 ('<f2') and bfloat16 bit patterns ('<u2') widen exactly to float32.
TEST(npy, half_and_bfloat16_widen_exactly) {
  using xent::npy::bfloat16_to_float;
  using xent::npy::half_to_float;
  EXPECT_EQ(half_to_float(0x3c00), 1.0f);
  EXPECT_EQ(half_to_float(0x3e70), 1.609375f);
  EXPECT_EQ(half_to_float(0x7bff), 65504.0f);
  EXPECT_EQ(half_to_float(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(half_to_float(0x03ff), std::ldexp(1023.0f, -24));  // largest subnormal
  EXPECT_EQ(half_to_float(0x0400), std::ldexp(1.0f, -14));  // smallest normal
  EXPECT_EQ(half_to_float(0xfc00), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(half_to_float(0x7e00)));
  EXPECT_TRUE(std::signbit(half_to_float(0x8000)) && half_to_float(0x8000) == 0.0f);
#ifdef __FLT16_MAX__
  // Every pattern against the compiler's own conversion.
  for (std::uint32_t b = 0; b < 0x10000; ++b) {
    const float want = static_cast<float>(std::bit_cast<_Float16>(static_cast<std::uint16_t>(b)));
    const float got = half_to_float(static_cast<std::uint16_t>(b));
    if (std::isnan(want)) EXPECT_TRUE(std::isnan(got)) << b;
    else EXPECT_EQ(std::bit_cast<std::uint32_t>(got), std::bit_cast<std::uint32_t>(want)) << b;
  }
#endif
  EXPECT_EQ(bfloat16_to_float(0x3f80), 1.0f);
  EXPECT_EQ(bfloat16_to_float(0x3fce), 1.609375f);
  EXPECT_EQ(bfloat16_to_float(0x0001), std::ldexp(1.0f, -133));
  EXPECT_EQ(bfloat16_to_float(0x7f7f), std::ldexp(255.0f, 120));
  const std::vector<std::uint16_t> bits{0x3c00, 0xc000, 0x0001};
  const auto h = xent::npy::parse(xent::npy::serialize(xent::npy::make(bits, {3}, xent::npy::dtype::f16)), "h.npy");
  EXPECT_EQ(h.type, xent::npy::dtype::f16);
  EXPECT_EQ(h.f16_as_f32(), (std::vector<float>{1.0f, -2.0f, std::ldexp(1.0f, -24)}));
  const auto u = xent::npy::parse(xent::npy::serialize(xent::npy::make(bits, {3}, xent::npy::dtype::u16)), "u.npy");
  EXPECT_EQ(u.type, xent::npy::dtype::u16);
  EXPECT_EQ(u.bf16_bits_as_f32(), (std::vector<float>{bfloat16_to_float(0x3c00), -2.0f, std::ldexp(1.0f, -133)}));
  EXPECT_THROW((void)h.bf16_bits_as_f32(), xent::npy::npy_error);
  EXPECT_THROW((void)xent::npy::make(bits, {3}, xent::npy::dtype::f32), xent::npy::npy_error);
}

TEST(npy, reads_the_headers_numpy_writes) {
  // np.save of a float32 [3, 5] array (version 1.0, padded, newline).
  std::string h = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 5), }";
  h.append(128 - 10 - h.size() - 1, ' ');
  h += '\n';
  auto a = xent::npy::parse(file_with(h, zeros(60)), "np.npy");
  EXPECT_EQ(a.type, xent::npy::dtype::f32);
  EXPECT_EQ(a.shape, (std::vector<std::int64_t>{3, 5}));
  // 1-tuple, scalar, versions 2.0 and 3.0, double quotes, no trailing comma,
  // Python 2 longs, bool.
  EXPECT_EQ(xent::npy::parse(file_with("{'descr': '<i8', 'fortran_order': False, 'shape': (4,), }\n",
                                       zeros(32), 2),
                             "a")
                .shape,
            (std::vector<std::int64_t>{4}));
  EXPECT_TRUE(xent::npy::parse(file_with("{'descr': '<f8', 'fortran_order': False, 'shape': (), }",
                                         zeros(8), 3),
                               "a")
                  .shape.empty());
  EXPECT_EQ(xent::npy::parse(file_with("{\"shape\": (2L, 3L), \"fortran_order\": False, \"descr\": \"<i4\"}",
                                       zeros(24)),
                             "a")
                .type,
            xent::npy::dtype::i32);
  EXPECT_EQ(xent::npy::parse(file_with("{'descr': '|b1', 'fortran_order': False, 'shape': (5,)}", zeros(5)),
                             "a")
                .type,
            xent::npy::dtype::b1);
}

TEST(npy, malformed_files_give_one_line_errors_naming_the_problem) {
  const std::string ok = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }\n";
  EXPECT_NPY_ERROR(bytes{}, "bad magic");
  EXPECT_NPY_ERROR((bytes{'P', 'K', 3, 4, 0, 0, 0, 0, 0, 0}), "bad magic");
  EXPECT_NPY_ERROR(file_with(ok, zeros(8), 4), "version 4.0");
  const bytes full = file_with(ok, zeros(8));
  EXPECT_NPY_ERROR(bytes(full.begin(), full.begin() + 9), "truncated .npy header");
  EXPECT_NPY_ERROR(bytes(full.begin(), full.begin() + 30), "truncated .npy header");
  EXPECT_NPY_ERROR(file_with("[1, 2, 3]\n"), "not a dict");
  EXPECT_NPY_ERROR(file_with(""), "empty");
  EXPECT_NPY_ERROR(file_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2,)"), "no closing");
  EXPECT_NPY_ERROR(file_with("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", zeros(8)),
                   "unsupported dtype '>f4' (big-endian");
  EXPECT_NPY_ERROR(file_with("{'descr': '|O', 'fortran_order': False, 'shape': (2,), }", zeros(16)),
                   "unsupported dtype '|O'");
  EXPECT_NPY_ERROR(file_with("{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }", zeros(16)),
                   "unsupported dtype '<c8'");
  EXPECT_NPY_ERROR(file_with("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", zeros(8)),
                   "structured");
  EXPECT_NPY_ERROR(file_with("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", zeros(15)),
                   "data is truncated");
  EXPECT_NPY_ERROR(file_with(ok, zeros(7)), "data is truncated");
  EXPECT_NPY_ERROR(file_with(ok, zeros(0)), "data is truncated");
  EXPECT_NPY_ERROR(file_with(ok, zeros(9)), "unexpected bytes after the data");
  EXPECT_NPY_ERROR(file_with("{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }"), "negative extent");
  EXPECT_NPY_ERROR(file_with("{'descr': '<f4', 'fortran_order': False, 'shape': [2], }", zeros(8)),
                   "not a tuple");
  EXPECT_NPY_ERROR(file_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2.5,), }"), "non-integer");
  EXPECT_NPY_ERROR(file_with("{'descr': '<f4', 'shape': (2,), }", zeros(8)), "missing key 'fortran_order'");
  EXPECT_NPY_ERROR(file_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}", zeros(8)),
                   "unexpected key 'x'");
  EXPECT_NPY_ERROR(file_with("{'descr': '<f4', 'fortran_order': 0, 'shape': (2,), }", zeros(8)),
                   "'fortran_order' is an integer");
  EXPECT_NPY_ERROR(file_with("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, "
                             "4294967296, 4294967296), }"),
                   "too large");
  EXPECT_NPY_ERROR(file_with("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}"),
                   "too large");
  // Sizes: the count of the non-zero extents and the byte size
  // must fit in int64, also when another extent is 0 (NumPy refuses those
  // too), so array::numel() and every consumer can multiply extents freely.
  EXPECT_NPY_ERROR(file_with("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 4611686018427387904, "
                             "4611686018427387904), }"),
                   "is too large");
  EXPECT_NPY_ERROR(file_with("{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776, 0, "
                             "1099511627776), }"),
                   "is too large");
  EXPECT_NPY_ERROR(file_with("{'descr': '<f8', 'fortran_order': False, 'shape': (9223372036854775807,), }"),
                   "byte size overflows a 64-bit integer");
  EXPECT_NPY_ERROR(file_with("{'descr': '|b1', 'fortran_order': False, 'shape': (9223372036854775807, 2), }"),
                   "too large");
  // Fits in 64 bits, not in the file.
  EXPECT_NPY_ERROR(file_with("{'descr': '|b1', 'fortran_order': False, 'shape': (9223372036854775807,), }"),
                   "needs 9223372036854775807 bytes, the file has 0");
  EXPECT_NPY_ERROR(file_with("{'descr': '<f4', 'fortran_order': False, 'shape': (" +
                             [] { std::string s; for (int i = 0; i < 40; ++i) s += "1, "; return s; }() + "), }"),
                   "40 dimensions (at most 32)");
  {
    const auto empty = xent::npy::parse(
        file_with("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 1099511627776), }"), "x.npy");
    EXPECT_EQ(empty.numel(), 0);
  }
  // Found by fuzz/fuzz_npy: the message quoted 24 header bytes from the start
  // of a too large integer, newlines included (a two-line message).
  EXPECT_NPY_ERROR(file_with("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999\n\r,), }"),
                   "the integer 99999999999999999999 is too large");
  // Found by fuzz/fuzz_npy: header strings were quoted raw, so a key or a
  // dtype holding a newline split the message in two.
  EXPECT_NPY_ERROR(file_with("{'d\nescr': '<f4', 'fortran_order': False, 'shape': (1,), }", zeros(4)),
                   "unexpected key 'd\\x0aescr'");
  EXPECT_NPY_ERROR(file_with("{'descr': '<f4\r\n', 'fortran_order': False, 'shape': (1,), }", zeros(4)),
                   "unsupported dtype '<f4\\x0d\\x0a'");
  EXPECT_NPY_ERROR(file_with("{'descr': '" + std::string(100, 'z') + "', 'fortran_order': False, 'shape': (1,)}"),
                   "unsupported dtype '" + std::string(40, 'z') + "...'");
  EXPECT_NPY_ERROR(file_with(std::string(100000, '(')), "not a dict");
  EXPECT_NPY_ERROR(file_with("{'a': " + std::string(1000, '(') + "}"), "nests too deeply");
}

TEST(npy, every_truncation_of_a_valid_file_is_an_error) {
  const bytes f = xent::npy::serialize(xent::npy::make(std::vector<double>{1, 2, 3, 4, 5, 6}, {2, 3}));
  for (std::size_t n = 0; n < f.size(); ++n) {
    const std::string msg = error_of(bytes(f.begin(), f.begin() + static_cast<std::ptrdiff_t>(n)));
    EXPECT_NE(msg.find("x.npy: "), std::string::npos) << "prefix of " << n << " bytes parsed";
  }
  EXPECT_EQ(error_of(f), "");
}

// Random corruption of the header: parsing either succeeds (and then the
// result is consistent) or throws npy_error; nothing else.
TEST(npy, fuzz_garbled_headers) {
  const bytes valid = xent::npy::serialize(xent::npy::make(std::vector<float>(12, 1.0f), {3, 4}));
  const std::string alphabet = "{}()[],:' \"<>|=fiubcOU0123456789-LTrueFalsdhp\n\t\\x";
  std::mt19937_64 g(12345);
  int parsed = 0, errors = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    bytes f = valid;
    const int edits = 1 + static_cast<int>(g() % 4);
    for (int e = 0; e < edits; ++e) {
      const std::size_t pos = 6 + g() % (f.size() - 6 - 48);  // version, length and header bytes
      switch (g() % 3) {
        case 0: f[pos] = static_cast<unsigned char>(g()); break;
        case 1: f[pos] = static_cast<unsigned char>(alphabet[g() % alphabet.size()]); break;
        case 2: f.erase(f.begin() + static_cast<std::ptrdiff_t>(pos)); break;
      }
    }
    try {
      const auto a = xent::npy::parse(f, "fuzz.npy");
      EXPECT_EQ(static_cast<std::size_t>(a.numel()) * xent::npy::size_of(a.type), a.bytes.size());
      ++parsed;
    } catch (const npy_error& e) {
      EXPECT_EQ(std::string(e.what()).rfind("fuzz.npy: ", 0), 0u) << e.what();
      ++errors;
    }
  }
  EXPECT_GT(errors, 10000);
  // Random headers of random length after a valid prefix.
  for (int iter = 0; iter < 5000; ++iter) {
    std::string h;
    const std::size_t len = g() % 80;
    for (std::size_t i = 0; i < len; ++i) h += alphabet[g() % alphabet.size()];
    const bytes f = file_with(h, zeros(g() % 64), 1 + static_cast<int>(g() % 3));
    try {
      (void)xent::npy::parse(f, "fuzz.npy");
    } catch (const npy_error&) {
    }
  }
  std::printf("fuzz: %d corrupted files parsed, %d rejected\n", parsed, errors);
}

TEST(npy, files) {
  const auto dir = std::filesystem::temp_directory_path() / ("npy_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "a.npy").string();
  xent::npy::write(path, xent::npy::make(std::vector<std::int64_t>{1, 3, 2}, {3}));
  EXPECT_EQ(xent::npy::read(path).as_i64(), (std::vector<std::int64_t>{1, 3, 2}));
  try {
    xent::npy::read((dir / "missing.npy").string());
    ADD_FAILURE() << "no error for a missing file";
  } catch (const npy_error& e) {
    EXPECT_NE(std::string(e.what()).find("missing.npy: cannot open"), std::string::npos) << e.what();
  }
  EXPECT_THROW(xent::npy::read(dir.string()), npy_error);
  EXPECT_THROW(xent::npy::write((dir / "no" / "such" / "dir.npy").string(),
                                xent::npy::make(std::vector<float>{1}, {1})),
               npy_error);
  std::filesystem::remove_all(dir);
}

// Fortran-order arrays come back in C order: element (i, j, k) of a
// (2, 3, 2) array is stored at i + 2 j + 6 k.
TEST(npy, fortran_order_is_transposed_to_c_order) {
  std::vector<float> f(12);
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 2; ++k) f[static_cast<std::size_t>(i + 2 * j + 6 * k)] = static_cast<float>(100 * i + 10 * j + k);
  std::vector<unsigned char> data(48);
  std::memcpy(data.data(), f.data(), 48);
  const auto a = xent::npy::parse(file_with("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3, 2), }", data), "f.npy");
  ASSERT_EQ(a.shape, (std::vector<std::int64_t>{2, 3, 2}));
  const auto c = a.as_f32();
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 2; ++k) EXPECT_EQ(c[static_cast<std::size_t>((i * 3 + j) * 2 + k)], 100 * i + 10 * j + k);
  // 1-D and scalars are the same in both orders.
  const auto v = xent::npy::parse(
      file_with("{'descr': '<f4', 'fortran_order': True, 'shape': (3,), }", bytes(data.begin(), data.begin() + 12)), "v.npy");
  EXPECT_EQ(v.as_f32(), (std::vector<float>{f[0], f[1], f[2]}));
}

}  // namespace
