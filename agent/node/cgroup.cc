#include "agent/node/cgroup.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <optional>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

// Name formats, from the code that creates them:
//
// Pod cgroups (kubelet, pkg/kubelet/cm/cgroup_manager_linux.go and qos_container_manager_linux.go):
// the abstract name is {cgroup-root..., "kubepods", [qos], "pod"+UID}; guaranteed pods sit directly
// under "kubepods", burstable/besteffort under a QoS level.
//   cgroupfs driver: ToCgroupfs() joins with '/':   /kubepods/burstable/pod<uid>
//   systemd driver:  ToSystemd() replaces '-' by '_' in each part (escapeSystemdCgroupName), joins
//                    the parts with '-' and expands the slice (runc ExpandSlice):
//                    /kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_>.slice
//   A --cgroup-root (kind uses /kubelet) prefixes every part: kubelet-kubepods-...-pod<uid_>.slice.
// Pod UIDs are apiserver UUIDs (8-4-4-4-12 hex) or, for static pods, an md5 hex digest (32 hex,
// pkg/kubelet/config/common.go applyDefaults).
//
// Container cgroups (inside the pod cgroup, or elsewhere for plain containers):
//   containerd CRI (internal/cri/server/podsandbox/helpers_linux.go getCgroupsPath): a parent
//     ending in ".slice" gives the runc systemd path "slice:cri-containerd:<id>", which runc
//     turns into cri-containerd-<id>.scope; otherwise <parent>/<id> (a bare id).
//   CRI-O (internal/config/cgmgr/systemd_linux.go, cgroupfs_linux.go): crio-<id>.scope (systemd),
//     <parent>/crio-<id> (cgroupfs, and the sandbox infra cgroup under systemd); conmon runs in
//     crio-conmon-<id>.scope or <parent>/crio-conmon-<id>.
//   Docker: docker-<id>.scope (systemd driver, under system.slice or a pod slice), /docker/<id>
//     (cgroupfs driver); cri-dockerd under the kubelet cgroupfs driver: bare <id> in the pod.
//   Podman: libpod-<id>.scope, conmon in libpod-conmon-<id>.scope.
//   crun (cgroup v2) may run the payload in a child cgroup of the scope (e.g. ".../container"), so
//   components after the container's are skipped.
//
// /proc/<pid>/cgroup (kernel/cgroup/cgroup.c proc_cgroup_show):
// "<hierarchy-id>:<controllers>:<path>" per hierarchy; the v2 hierarchy is "0::<path>"; a v1 named
// hierarchy shows "name=<name>" in the controller list. The path is relative to the reader's cgroup
// namespace root, with "/.." for each level above it (cgroup_namespaces(7)); a removed v2 cgroup
// gets " (deleted)" appended.
//
// Nested containers (kind, docker-in-docker) show the outer container's cgroup as an ancestor; the
// innermost container and pod components win.

namespace ctxagent {
namespace {

constexpr size_t kMaxCgroupFileBytes = 1 << 20;
constexpr absl::string_view kDeletedSuffix = " (deleted)";

bool IsHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

bool IsContainerId(absl::string_view s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), IsHex);
}

// A pod UID as written by kubelet: an 8-4-4-4-12 UUID or 32 hex digits (static pods).
bool IsPodUid(absl::string_view s) {
  auto hex = [](char c) { return absl::ascii_isxdigit(static_cast<unsigned char>(c)); };
  if (s.size() == 32) return std::all_of(s.begin(), s.end(), hex);
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : !hex(s[i])) return false;
  }
  return true;
}

struct ContainerMatch {
  std::string id;
  std::string runtime;
  bool conmon = false;  // the runtime's monitor process, not the container
};

std::optional<ContainerMatch> MatchContainer(absl::string_view component,
                                             absl::string_view parent) {
  struct Prefix {
    absl::string_view prefix;
    absl::string_view runtime;
    bool conmon;
  };
  // Conmon prefixes first: "crio-" is a prefix of "crio-conmon-".
  static constexpr Prefix kPrefixes[] = {
      {"cri-containerd-", "containerd", false},
      {"crio-conmon-", "cri-o", true},
      {"crio-", "cri-o", false},
      {"docker-", "docker", false},
      {"libpod-conmon-", "podman", true},
      {"libpod-", "podman", false},
  };
  absl::string_view name = component;
  bool scope = absl::ConsumeSuffix(&name, ".scope");
  for (const Prefix& p : kPrefixes) {
    absl::string_view id = name;
    if (absl::ConsumePrefix(&id, p.prefix) && IsContainerId(id)) {
      return ContainerMatch{std::string(id), std::string(p.runtime), p.conmon};
    }
  }
  if (!scope && IsContainerId(name)) {
    // A bare id: Docker's cgroupfs driver (/docker/<id>), or containerd / cri-dockerd under the
    // kubelet's cgroupfs driver, which the name alone cannot tell apart.
    return ContainerMatch{std::string(name), parent == "docker" ? "docker" : "", false};
  }
  return std::nullopt;
}

struct PodMatch {
  std::string uid;
  std::string qos;
};

bool IsQosLevel(absl::string_view s) { return s == "burstable" || s == "besteffort"; }

std::optional<PodMatch> MatchPod(absl::string_view component, absl::string_view parent,
                                 absl::string_view grandparent) {
  absl::string_view slice = component;
  if (absl::ConsumeSuffix(&slice, ".slice")) {
    // systemd: [<root>-]kubepods[-<qos>]-pod<uid with '_' for '-'>.slice
    std::vector<absl::string_view> parts = absl::StrSplit(slice, '-');
    size_t n = parts.size();
    absl::string_view last = parts[n - 1];
    if (n < 2 || !absl::ConsumePrefix(&last, "pod")) return std::nullopt;
    std::string uid = absl::StrReplaceAll(last, {{"_", "-"}});
    if (!IsPodUid(uid)) return std::nullopt;
    if (parts[n - 2] == "kubepods") return PodMatch{std::move(uid), "guaranteed"};
    if (n >= 3 && IsQosLevel(parts[n - 2]) && parts[n - 3] == "kubepods") {
      return PodMatch{std::move(uid), std::string(parts[n - 2])};
    }
    return std::nullopt;
  }
  // cgroupfs: .../kubepods[/<qos>]/pod<uid>
  absl::string_view uid = component;
  if (!absl::ConsumePrefix(&uid, "pod") || !IsPodUid(uid)) return std::nullopt;
  if (parent == "kubepods") return PodMatch{std::string(uid), "guaranteed"};
  if (IsQosLevel(parent) && grandparent == "kubepods") {
    return PodMatch{std::string(uid), std::string(parent)};
  }
  return std::nullopt;
}

bool Informative(const WorkloadIdentity& id) {
  return !id.container_id.empty() || !id.pod_uid.empty() || !id.runtime.empty();
}

struct CgroupLine {
  int hierarchy;
  std::vector<absl::string_view> controllers;
  absl::string_view path;
};

// Which line to read the identity from: kubelet and the runtimes place a process in the same
// relative path in every hierarchy they manage, but cgroup v1 hosts may leave some controllers
// (cpuset, net_cls, ...) at "/" or elsewhere, so a fixed order keeps the choice consistent.
int Preference(const CgroupLine& line) {
  auto has = [&](absl::string_view c) {
    return std::find(line.controllers.begin(), line.controllers.end(), c) != line.controllers.end();
  };
  if (has("pids")) return 0;
  if (has("cpu")) return 1;  // "cpu,cpuacct" or a lone "cpu"
  if (has("memory")) return 2;
  if (has("name=systemd")) return 3;
  if (line.hierarchy == 0) return 4;  // v2, or the hybrid-mode unified hierarchy
  return 5;
}

absl::Status ReadSmallFile(const std::string& path, size_t max_bytes, std::string* out) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::ErrnoToStatus(errno, path);
  out->clear();
  char buf[4096];
  absl::Status status;
  while (true) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      status = absl::ErrnoToStatus(errno, path);
      break;
    }
    if (n == 0) break;
    if (out->size() + static_cast<size_t>(n) > max_bytes) {
      status =
          absl::InvalidArgumentError(absl::StrCat(path, ": larger than ", max_bytes, " bytes"));
      break;
    }
    out->append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return status;
}

absl::Status ListDirError(const std::string& dir, const std::error_code& ec) {
  return absl::ErrnoToStatus(ec.value(), absl::StrCat("listing ", dir));
}

}  // namespace

WorkloadIdentity ParseCgroupPath(absl::string_view path) {
  WorkloadIdentity out;
  absl::ConsumeSuffix(&path, kDeletedSuffix);
  out.cgroup_path = std::string(path);

  std::vector<absl::string_view> parts;
  for (absl::string_view c : absl::StrSplit(path, '/', absl::SkipEmpty())) {
    if (c != "." && c != "..") parts.push_back(c);  // ".." only above the reader's cgroupns root
  }
  std::optional<ContainerMatch> container;
  std::optional<PodMatch> pod;
  size_t container_at = 0, pod_at = 0;
  for (size_t i = 0; i < parts.size(); ++i) {
    absl::string_view parent = i >= 1 ? parts[i - 1] : "";
    absl::string_view grandparent = i >= 2 ? parts[i - 2] : "";
    if (auto c = MatchContainer(parts[i], parent)) {
      container = std::move(c);
      container_at = i;
    } else if (auto p = MatchPod(parts[i], parent, grandparent)) {
      pod = std::move(p);
      pod_at = i;
    }
  }
  if (pod) {
    out.pod_uid = std::move(pod->uid);
    out.qos = std::move(pod->qos);
  }
  // A container above the innermost pod is an outer layer (e.g. the kind node's own container);
  // the process then sits in the pod's cgroup itself.
  if (container && !(pod && container_at < pod_at)) {
    out.runtime = std::move(container->runtime);
    if (!container->conmon) out.container_id = std::move(container->id);
  }
  return out;
}

absl::StatusOr<WorkloadIdentity> ParseCgroupFile(absl::string_view contents) {
  if (contents.size() > kMaxCgroupFileBytes) {
    return absl::InvalidArgumentError(absl::StrCat("cgroup file of ", contents.size(), " bytes"));
  }
  std::vector<CgroupLine> lines;
  int line_no = 0;
  for (absl::string_view text : absl::StrSplit(contents, '\n')) {
    ++line_no;
    if (text.empty()) continue;  // the trailing newline
    std::vector<absl::string_view> fields = absl::StrSplit(text, absl::MaxSplits(':', 2));
    auto bad = [&](absl::string_view why) {
      return absl::InvalidArgumentError(
          absl::StrCat("cgroup line ", line_no, " (", text.substr(0, 200), "): ", why));
    };
    if (fields.size() != 3) return bad("want <id>:<controllers>:<path>");
    CgroupLine line;
    if (fields[0].empty() || fields[0].size() > 9 ||
        !std::all_of(fields[0].begin(), fields[0].end(), absl::ascii_isdigit) ||
        !absl::SimpleAtoi(fields[0], &line.hierarchy)) {
      return bad("hierarchy id is not a number");
    }
    if (!fields[1].empty()) line.controllers = absl::StrSplit(fields[1], ',');
    if (line.hierarchy == 0 && !line.controllers.empty())
      return bad("hierarchy 0 with controllers");
    if (std::find(line.controllers.begin(), line.controllers.end(), "") != line.controllers.end()) {
      return bad("empty controller name");
    }
    line.path = fields[2];
    absl::ConsumeSuffix(&line.path, kDeletedSuffix);
    if (line.path.empty() || line.path[0] != '/') return bad("path is not absolute");
    if (absl::StrContains(line.path, '\0')) return bad("NUL in path");
    lines.push_back(line);
  }
  if (lines.empty()) return absl::InvalidArgumentError("cgroup file has no lines");

  std::stable_sort(lines.begin(), lines.end(), [](const CgroupLine& a, const CgroupLine& b) {
    return Preference(a) < Preference(b);
  });
  for (const CgroupLine& line : lines) {
    WorkloadIdentity id = ParseCgroupPath(line.path);
    if (Informative(id)) return id;
  }
  WorkloadIdentity host;
  host.cgroup_path = std::string(lines.front().path);
  return host;
}

absl::StatusOr<WorkloadIdentity> IdentifyProcess(const std::string& proc_root, int pid) {
  if (pid <= 0) return absl::InvalidArgumentError(absl::StrCat("bad pid ", pid));
  std::string path = absl::StrCat(proc_root, "/", pid, "/cgroup");
  std::string contents;
  if (absl::Status s = ReadSmallFile(path, kMaxCgroupFileBytes, &contents); !s.ok()) {
    // ENOENT: no such pid; ESRCH: it exited between open() and read(). Both map to NotFound.
    if (absl::IsNotFound(s)) {
      return absl::NotFoundError(absl::StrCat("process ", pid, " not found: ", s.message()));
    }
    return s;
  }
  absl::StatusOr<WorkloadIdentity> id = ParseCgroupFile(contents);
  if (!id.ok()) return absl::InvalidArgumentError(absl::StrCat(path, ": ", id.status().message()));
  return id;
}

absl::StatusOr<PodRef> ResolvePod(const std::string& log_pods_root, const std::string& pod_uid) {
  if (pod_uid.empty() || pod_uid.size() > 64 || absl::StrContains(pod_uid, '/') ||
      absl::StrContains(pod_uid, '_') || pod_uid == "." || pod_uid == "..") {
    return absl::InvalidArgumentError(absl::StrCat("bad pod uid \"", pod_uid, "\""));
  }
  // <namespace>_<name>_<uid> (kubelet BuildPodLogsDirectory, logPathDelimiter "_"); namespaces are
  // DNS labels and pod names DNS subdomains, so neither contains '_'.
  const std::string suffix = absl::StrCat("_", pod_uid);
  std::error_code ec;
  std::filesystem::directory_iterator it(log_pods_root, ec);
  if (ec) return ListDirError(log_pods_root, ec);
  std::optional<std::string> best;
  for (; it != std::filesystem::directory_iterator(); it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (!absl::EndsWith(name, suffix)) continue;
    std::vector<absl::string_view> parts = absl::StrSplit(name, '_');
    if (parts.size() != 3 || parts[0].empty() || parts[1].empty()) continue;
    if (!best || name < *best) best = name;  // deterministic if (impossibly) several
  }
  if (ec) return ListDirError(log_pods_root, ec);
  if (!best) {
    return absl::NotFoundError(absl::StrCat("no ", log_pods_root, "/<ns>_<name>_", pod_uid));
  }
  std::vector<std::string> parts = absl::StrSplit(*best, '_');
  return PodRef{parts[0], parts[1], parts[2]};
}

absl::StatusOr<std::string> ResolveContainerName(const std::string& log_pods_root,
                                                 const std::string& log_containers_root,
                                                 const PodRef& pod,
                                                 const std::string& container_id) {
  if (!IsContainerId(container_id)) {
    return absl::InvalidArgumentError(absl::StrCat("bad container id \"", container_id, "\""));
  }
  if (pod.pod_namespace.empty() || pod.pod_name.empty() || pod.pod_uid.empty()) {
    return absl::InvalidArgumentError("incomplete pod reference");
  }
  std::error_code ec;
  // 1. kubelet's legacy symlink, made for every started container:
  // "<pod>_<ns>_<container>-<id>.log"
  //    (pkg/kubelet/kuberuntime/legacy.go logSymlink; BuildPodFullName is "<pod>_<ns>"). Names
  //    longer than 251 bytes are truncated there, losing the id; then fall back to 2.
  const std::string prefix = absl::StrCat(pod.pod_name, "_", pod.pod_namespace, "_");
  const std::string suffix = absl::StrCat("-", container_id, ".log");
  std::filesystem::directory_iterator it(log_containers_root, ec);
  for (; !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (name.size() <= prefix.size() + suffix.size() || !absl::StartsWith(name, prefix) ||
        !absl::EndsWith(name, suffix)) {
      continue;
    }
    std::string container = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
    if (!absl::StrContains(container, '_')) return container;
  }
  // 2. The pod's log directory has one subdirectory per container that has started
  //    (BuildContainerLogsDirectory: <ns>_<pod>_<uid>/<container>/<restart>.log). Only a single one
  //    identifies the container; note the sandbox (pause) container has none, so a pause process
  //    in a one-container pod would be misnamed by this fallback.
  const std::string pod_dir =
      absl::StrCat(log_pods_root, "/", pod.pod_namespace, "_", pod.pod_name, "_", pod.pod_uid);
  ec.clear();
  std::filesystem::directory_iterator dit(pod_dir, ec);
  if (ec) return ListDirError(pod_dir, ec);
  std::vector<std::string> containers;
  for (; dit != std::filesystem::directory_iterator(); dit.increment(ec)) {
    std::error_code dir_ec;
    if (dit->is_directory(dir_ec)) containers.push_back(dit->path().filename().string());
  }
  if (ec) return ListDirError(pod_dir, ec);
  if (containers.size() == 1) return containers.front();
  return absl::NotFoundError(absl::StrCat(
      "container ", container_id.substr(0, 12), " of ", pod.pod_namespace, "/", pod.pod_name,
      ": no log symlink and ", containers.size(), " container log directories"));
}

PodResolver::PodResolver(std::string log_pods_root, std::string log_containers_root,
                         size_t max_entries)
    : log_pods_root_(std::move(log_pods_root)),
      log_containers_root_(std::move(log_containers_root)),
      max_entries_(std::max<size_t>(max_entries, 1)) {}

absl::StatusOr<PodRef> PodResolver::Resolve(const std::string& pod_uid) {
  if (auto it = pods_.find(pod_uid); it != pods_.end()) return it->second;
  absl::StatusOr<PodRef> pod = ResolvePod(log_pods_root_, pod_uid);
  if (!pod.ok()) return pod;
  if (pods_.size() >= max_entries_) pods_.clear();  // crude bound; Forget() is the normal path
  pods_.emplace(pod_uid, *pod);
  return pod;
}

absl::StatusOr<std::string> PodResolver::ContainerName(const PodRef& pod,
                                                       const std::string& container_id) {
  if (auto it = containers_.find(container_id); it != containers_.end()) return it->second;
  absl::StatusOr<std::string> name =
      ResolveContainerName(log_pods_root_, log_containers_root_, pod, container_id);
  if (!name.ok()) return name;
  if (containers_.size() >= max_entries_) {
    containers_.clear();
    container_pod_.clear();
  }
  containers_.emplace(container_id, *name);
  container_pod_.emplace(container_id, pod.pod_uid);
  return name;
}

void PodResolver::Forget(const std::string& pod_uid) {
  pods_.erase(pod_uid);
  std::vector<std::string> drop;
  for (const auto& [container, uid] : container_pod_) {
    if (uid == pod_uid) drop.push_back(container);
  }
  for (const std::string& container : drop) {
    containers_.erase(container);
    container_pod_.erase(container);
  }
}

}  // namespace ctxagent
