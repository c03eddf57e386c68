#include "agent/view/utf8.h"

#include "gtest/gtest.h"

namespace ctxagent {
namespace {

TEST(Utf8Test, KeepsValidTextAndEscapesEveryInvalidByte) {
  EXPECT_EQ(EscapeInvalidUtf8("main.go"), "main.go");
  EXPECT_EQ(EscapeInvalidUtf8("caf\xc3\xa9 \xe2\x94\x94 \xf0\x9f\x98\x80"),
            "caf\xc3\xa9 \xe2\x94\x94 \xf0\x9f\x98\x80");
  EXPECT_EQ(EscapeInvalidUtf8("/tmp/a\xff/b"), "/tmp/a\\xff/b");
  EXPECT_EQ(EscapeInvalidUtf8("\xc3"), "\\xc3");                             // truncated sequence
  EXPECT_EQ(EscapeInvalidUtf8("\xc0\xaf"), "\\xc0\\xaf");                    // overlong '/'
  EXPECT_EQ(EscapeInvalidUtf8("\xed\xa0\x80"), "\\xed\\xa0\\x80");           // surrogate
  EXPECT_EQ(EscapeInvalidUtf8("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");  // above U+10FFFF
}

TEST(Utf8Test, DumpJsonEscapesStringsAndKeysInsteadOfThrowing) {
  nlohmann::json j = {
      {"file", "/src/\xff/main.go"}, {"list", {"ok", "x\xfe"}}, {"k\x80", 1}, {"n", 2}};
  std::string out;
  ASSERT_NO_THROW(out = DumpJson(j));
  EXPECT_EQ(out, R"({"file":"/src/\\xff/main.go","k\\x80":1,"list":["ok","x\\xfe"],"n":2})");
  EXPECT_EQ(nlohmann::json::parse(out)["file"], "/src/\\xff/main.go");
  EXPECT_EQ(DumpJson({{"a", "\xc3\xa9"}}, 1), "{\n \"a\": \"\xc3\xa9\"\n}");
}

}  // namespace
}  // namespace ctxagent
