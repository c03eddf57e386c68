#include "symbols/buildinfo.h"

#include <string>

#include "absl/strings/ascii.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "symbols/test_fixtures.h"

namespace ctxagent::symbols {
namespace {

TEST(GoVersionTest, ParsesReleasesAndSuffixes) {
  auto v = GoVersion::Parse("go1.26.10-X:goroutineleakprofile");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->major, 1);
  EXPECT_EQ(v->minor, 26);
  EXPECT_EQ(v->patch, 10);
  EXPECT_EQ(v->suffix, "-X:goroutineleakprofile");
  EXPECT_EQ(v->ShortString(), "go1.26");
  EXPECT_TRUE(v->AtLeast(21));
  EXPECT_FALSE(v->AtLeast(27));

  v = GoVersion::Parse("go1.21rc2");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->minor, 21);
  EXPECT_EQ(v->patch, 0);
  EXPECT_EQ(v->suffix, "rc2");

  v = GoVersion::Parse("go1.19.8 X:boringcrypto");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->patch, 8);
  EXPECT_EQ(v->suffix, " X:boringcrypto");

  EXPECT_FALSE(GoVersion::Parse("").ok());
  EXPECT_FALSE(GoVersion::Parse("go").ok());
  EXPECT_FALSE(GoVersion::Parse("go1").ok());
  EXPECT_FALSE(GoVersion::Parse("go1.99999999999999999999").ok());
}

TEST(BuildInfoTest, MatchesGoVersionDashM) {
  for (const auto& f : testing::AllFixtures("ctxprog")) {
    SCOPED_TRACE(f.path);
    auto elf = ElfFile::Open(f.path);
    ASSERT_TRUE(elf.ok()) << elf.status();
    auto info = ReadBuildInfo(**elf);
    ASSERT_TRUE(info.ok()) << info.status();
    // The toolchain's own reading of the same file.
    std::string first =
        testing::RunCommand("GOTOOLCHAIN=local " + f.go_tool + " version " + f.path);
    std::string expected =
        std::string(absl::StripAsciiWhitespace(first.substr(first.find(": ") + 2)));
    EXPECT_EQ(info->version.raw, expected);
    EXPECT_EQ(info->version.ShortString(), "go" + f.go_version);
    EXPECT_EQ(info->main_path, "example.com/ctxprog");
    EXPECT_EQ(info->main_module, "example.com/ctxprog");
    bool has_cgo = false;
    for (const auto& [k, val] : info->settings) {
      if (k == "CGO_ENABLED") {
        has_cgo = true;
        EXPECT_EQ(val, f.variant == "pieext" ? "1" : "0");
      }
    }
    EXPECT_TRUE(has_cgo);
  }
}

TEST(BuildInfoTest, NonGoBinaryIsNotFound) {
  auto elf = ElfFile::Open("/bin/true");
  ASSERT_TRUE(elf.ok());
  auto info = ReadBuildInfo(**elf);
  EXPECT_EQ(info.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(info.status().message()), ::testing::HasSubstr("not a Go binary"));
}

TEST(BuildInfoTest, CorruptedBlobFailsCleanly) {
  auto fixtures = testing::AllFixtures("ctxprog");
  ASSERT_FALSE(fixtures.empty());
  auto elf = ElfFile::Open(fixtures.back().path);
  ASSERT_TRUE(elf.ok());
  const ElfSection* s = (*elf)->FindSection(".go.buildinfo");
  ASSERT_NE(s, nullptr);
  std::string data((*elf)->data());
  // Flip the inline flag (pointer encoding with garbage pointers), then make the varint endless.
  for (int trial = 0; trial < 3; ++trial) {
    std::string copy = data;
    if (trial == 0) copy[s->offset + 15] ^= 0x2;
    if (trial == 1) memset(&copy[s->offset + 32], 0xff, 16);
    if (trial == 2) copy[s->offset + 14] = 4;
    auto e = ElfFile::FromBuffer(copy);
    ASSERT_TRUE(e.ok());
    auto info = ReadBuildInfo(**e);
    EXPECT_FALSE(info.ok()) << "trial " << trial;
  }
}

}  // namespace
}  // namespace ctxagent::symbols
