#include "agent/profile/pprof_proto.h"

#include <zlib.h>

#include <vector>

#include "absl/container/flat_hash_map.h"

namespace ctxagent::profile {
namespace {

// Protocol buffer wire format: varints (type 0) and length-delimited fields (type 2).
class Message {
 public:
  void Varint(uint64_t v) {
    while (v >= 0x80) {
      out_.push_back(static_cast<char>(v | 0x80));
      v >>= 7;
    }
    out_.push_back(static_cast<char>(v));
  }
  void UintField(int field, uint64_t v) {
    if (v == 0) return;  // proto3 default
    Varint(static_cast<uint64_t>(field) << 3);
    Varint(v);
  }
  void BoolField(int field, bool v) { UintField(field, v ? 1 : 0); }
  void BytesField(int field, absl::string_view bytes) {
    Varint(static_cast<uint64_t>(field) << 3 | 2);
    Varint(bytes.size());
    out_.append(bytes.data(), bytes.size());
  }
  void PackedField(int field, const std::vector<uint64_t>& values) {
    Message packed;
    for (uint64_t v : values) packed.Varint(v);
    BytesField(field, packed.out_);
  }
  const std::string& bytes() const { return out_; }

 private:
  std::string out_;
};

// Profile's field numbers.
enum : int {
  kSampleType = 1,
  kSample = 2,
  kMapping = 3,
  kLocation = 4,
  kFunction = 5,
  kStringTable = 6,
  kTimeNanos = 9,
  kDurationNanos = 10,
  kPeriodType = 11,
  kPeriod = 12,
  kComment = 13,
};

class Encoder {
 public:
  Encoder(StackSymbolizer& symbolizer) : symbolizer_(symbolizer) { String(""); }

  uint64_t String(const std::string& s) {
    auto [it, inserted] = strings_.try_emplace(s, strings_.size());
    if (inserted) top_.BytesField(kStringTable, s);
    return it->second;
  }
  Message ValueType(const std::string& type, const std::string& unit) {
    Message m;
    m.UintField(1, String(type));
    m.UintField(2, String(unit));
    return m;
  }
  // The location of a return address; 0 for one the runtime's own profiles leave out: generated
  // wrappers (tracebackPCs elides them) and runtime.goexit, the bottom of every stack.
  uint64_t Location(uint64_t pc) {
    if (auto it = locations_.find(pc); it != locations_.end()) return it->second;
    Message loc;
    const uint64_t id = locations_.size() + 1;
    loc.UintField(1, id);
    loc.UintField(2, 1);       // the executable's mapping
    loc.UintField(3, pc - 1);  // the call, as runtime/pprof records a return address
    bool shown = false;
    for (const symbols::SourceFrame& f : symbolizer_.Lookup(pc).frames) {
      if (f.wrapper || f.function == "runtime.goexit") continue;
      Message line;
      line.UintField(1, Function(f));
      line.UintField(2, static_cast<uint64_t>(f.line));
      loc.BytesField(4, line.bytes());
      shown = true;
    }
    if (!shown) return locations_[pc] = 0;
    top_.BytesField(kLocation, loc.bytes());
    return locations_[pc] = id;
  }
  Message& top() { return top_; }

 private:
  uint64_t Function(const symbols::SourceFrame& f) {
    auto [it, inserted] = functions_.try_emplace(f.function + '\0' + f.file, functions_.size() + 1);
    if (inserted) {
      Message fn;
      fn.UintField(1, it->second);
      fn.UintField(2, String(f.function));
      fn.UintField(3, String(f.function));
      fn.UintField(4, String(f.file));
      top_.BytesField(kFunction, fn.bytes());
    }
    return it->second;
  }

  StackSymbolizer& symbolizer_;
  Message top_;
  absl::flat_hash_map<std::string, uint64_t> strings_;
  absl::flat_hash_map<uint64_t, uint64_t> locations_;
  absl::flat_hash_map<std::string, uint64_t> functions_;
};

}  // namespace

std::string EncodeProfile(const Profile& profile, StackSymbolizer& symbolizer,
                          const Mapping& mapping) {
  Encoder e(symbolizer);
  Message& top = e.top();
  top.BytesField(kSampleType, e.ValueType(profile.name, "count").bytes());
  top.BytesField(kPeriodType, e.ValueType(profile.name, "count").bytes());
  top.UintField(kPeriod, 1);
  top.UintField(kTimeNanos, static_cast<uint64_t>(absl::ToUnixNanos(profile.taken)));
  top.UintField(kDurationNanos, static_cast<uint64_t>(absl::ToInt64Nanoseconds(profile.duration)));
  for (const std::string& c : profile.comments) top.UintField(kComment, e.String(c));
  Message m;
  m.UintField(1, 1);
  m.UintField(2, mapping.start);
  m.UintField(3, mapping.limit);
  m.UintField(4, mapping.file_offset);
  m.UintField(5, e.String(mapping.file));
  m.UintField(6, e.String(mapping.build_id));
  for (int field = 7; field <= 10; ++field)
    m.BoolField(field, true);  // functions, files, lines, inlines
  top.BytesField(kMapping, m.bytes());
  for (const Sample& s : profile.samples) {
    Message sample;
    std::vector<uint64_t> locations;
    for (uint64_t pc : s.pcs) {
      if (const uint64_t id = e.Location(pc); id != 0) locations.push_back(id);
    }
    sample.PackedField(1, locations);
    sample.PackedField(2, {static_cast<uint64_t>(s.count)});  // a delta's may be negative
    for (const auto& [key, value] : s.labels) {
      Message label;
      label.UintField(1, e.String(key));
      label.UintField(2, e.String(value));
      sample.BytesField(3, label.bytes());
    }
    top.BytesField(kSample, sample.bytes());
  }
  return top.bytes();
}

absl::StatusOr<std::string> Gzip(absl::string_view data) {
  z_stream z{};
  // 15 window bits + 16: a gzip header and trailer rather than zlib's.
  if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    return absl::InternalError("deflateInit2 failed");
  }
  std::string out(deflateBound(&z, data.size()), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  if (rc != Z_STREAM_END) return absl::InternalError("deflate did not finish");
  return out;
}

}  // namespace ctxagent::profile
