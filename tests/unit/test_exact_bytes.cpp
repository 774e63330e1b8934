// Bytes that are not UTF-8 carried through JSON: the readable form and the base64 beside it.
#include <leaseq/detail/exact_bytes.hpp>

#include <random>
#include <string>

#include <catch2/catch.hpp>

using namespace leaseq::detail;

TEST_CASE("is_valid_utf8 follows RFC 3629", "[exact_bytes]") {
  CHECK(is_valid_utf8(""));
  CHECK(is_valid_utf8("plain ascii\n\x01"));
  CHECK(is_valid_utf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
  CHECK_FALSE(is_valid_utf8("caf\xe9"));  // Latin-1
  CHECK_FALSE(is_valid_utf8("\xff"));
  CHECK_FALSE(is_valid_utf8("\xc0\xaf"));          // overlong '/'
  CHECK_FALSE(is_valid_utf8("\xed\xa0\x80"));      // surrogate
  CHECK_FALSE(is_valid_utf8("\xf4\x90\x80\x80"));  // past U+10FFFF
  CHECK_FALSE(is_valid_utf8("\xe2\x82"));          // truncated
  CHECK_FALSE(is_valid_utf8("\x9b"));              // stray continuation byte
}

TEST_CASE("to_valid_utf8 replaces each maximal invalid subpart by one U+FFFD", "[exact_bytes]") {
  const std::string r = "\xef\xbf\xbd";
  CHECK(to_valid_utf8("caf\xc3\xa9") == "caf\xc3\xa9");
  CHECK(to_valid_utf8("caf\xe9") == "caf" + r);
  CHECK(to_valid_utf8("\xff\xfe") == r + r);
  CHECK(to_valid_utf8("a\xe2\x82") == "a" + r);  // one subpart
  CHECK(to_valid_utf8("\xe2\x82"
                      "b") == r + "b");
  CHECK(to_valid_utf8("\xed\xa0\x80") == r + r + r);  // E0..ED rules end the subpart at once
  CHECK(to_valid_utf8("\xf0\x9f\x98") == r);
  std::mt19937 rng(3);
  for (int i = 0; i < 2000; ++i) {
    std::string s;
    for (int n = static_cast<int>(rng() % 12); n > 0; --n) s += static_cast<char>(rng() % 256);
    std::string v = to_valid_utf8(s);
    INFO(s);
    CHECK(is_valid_utf8(v));
    if (is_valid_utf8(s)) CHECK(v == s);
  }
}

TEST_CASE("base64 round-trips every byte string, RFC 4648 vectors", "[exact_bytes]") {
  CHECK(base64_encode("") == "");
  CHECK(base64_encode("f") == "Zg==");
  CHECK(base64_encode("fo") == "Zm8=");
  CHECK(base64_encode("foo") == "Zm9v");
  CHECK(base64_encode("foobar") == "Zm9vYmFy");
  CHECK(base64_encode(std::string("\xff\xfe\x00", 3)) == "//4A");
  std::mt19937 rng(5);
  for (int i = 0; i < 2000; ++i) {
    std::string s;
    for (int n = static_cast<int>(rng() % 20); n > 0; --n) s += static_cast<char>(rng() % 256);
    auto back = base64_decode(base64_encode(s));
    REQUIRE(back);
    CHECK(*back == s);
  }
}

TEST_CASE("base64_decode takes the canonical spelling only", "[exact_bytes]") {
  CHECK(base64_decode("Zm9v") == std::string("foo"));
  CHECK_FALSE(base64_decode("Zm9"));     // unpadded
  CHECK_FALSE(base64_decode("Zm9v\n"));  // whitespace
  CHECK_FALSE(base64_decode("Zh=="));    // unused bits set ("f" is Zg==)
  CHECK_FALSE(base64_decode("Zm9="));    // unused bits set
  CHECK_FALSE(base64_decode("Z==="));
  CHECK_FALSE(base64_decode("Zg==Zg=="));  // padding in the middle
  CHECK_FALSE(base64_decode("Zm-v"));      // URL alphabet
}
