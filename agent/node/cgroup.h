// Process -> container -> pod, from node-local files only (no Kubernetes API, no CRI socket):
//   /proc/<pid>/cgroup          -> container id, runtime, pod UID, QoS class
//   /var/log/pods/<ns>_<pod>_<uid>/          -> pod namespace and name (kubelet's log layout)
//   /var/log/containers/<pod>_<ns>_<ctr>-<id>.log -> container name (kubelet's legacy log symlinks)
#ifndef CTXAGENT_AGENT_NODE_CGROUP_H_
#define CTXAGENT_AGENT_NODE_CGROUP_H_

#include <cstddef>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ctxagent {

struct WorkloadIdentity {
  std::string container_id;  // 64 lowercase hex digits; "" outside containers (and for conmon)
  // "containerd", "cri-o", "docker", "podman", or "" when the cgroup name does not say (e.g. a bare
  // id under the cgroupfs driver, which containerd and cri-dockerd both produce).
  std::string runtime;
  std::string pod_uid;      // with dashes (kubelet's escaping undone); 32 hex for static pods
  std::string qos;          // "guaranteed", "burstable", "besteffort", or "" outside pods
  std::string cgroup_path;  // the v2 path, or the path of the v1 hierarchy the identity came from

  bool in_container() const { return !container_id.empty(); }
  bool in_pod() const { return !pod_uid.empty(); }
  friend bool operator==(const WorkloadIdentity& a, const WorkloadIdentity& b) {
    return a.container_id == b.container_id && a.runtime == b.runtime && a.pod_uid == b.pod_uid &&
           a.qos == b.qos && a.cgroup_path == b.cgroup_path;
  }
};

// Parses the text of /proc/<pid>/cgroup. Host processes (no container or pod in the path) give an
// empty identity with an OK status; malformed text gives InvalidArgument.
absl::StatusOr<WorkloadIdentity> ParseCgroupFile(absl::string_view contents);

// Identity from one cgroup path alone (the third field of a /proc/<pid>/cgroup line).
WorkloadIdentity ParseCgroupPath(absl::string_view path);

// Reads <proc_root>/<pid>/cgroup ("/proc", or the host's /proc mounted elsewhere). NotFound when
// the process is gone.
absl::StatusOr<WorkloadIdentity> IdentifyProcess(const std::string& proc_root, int pid);

struct PodRef {
  std::string pod_namespace;
  std::string pod_name;
  std::string pod_uid;
  friend bool operator==(const PodRef& a, const PodRef& b) {
    return a.pod_namespace == b.pod_namespace && a.pod_name == b.pod_name && a.pod_uid == b.pod_uid;
  }
};

// Finds <log_pods_root>/<namespace>_<name>_<pod_uid> (kubelet >= 1.14 layout). NotFound when no
// such directory (pod gone, or the pre-1.14 <uid>-only layout which carries no names).
absl::StatusOr<PodRef> ResolvePod(const std::string& log_pods_root, const std::string& pod_uid);

// Container name for `container_id` in `pod`: first from kubelet's symlink
// <log_containers_root>/<pod>_<namespace>_<container>-<container_id>.log, else, when the pod's log
// directory <log_pods_root>/<ns>_<pod>_<uid>/ holds exactly one container directory, that one.
// NotFound otherwise.
absl::StatusOr<std::string> ResolveContainerName(const std::string& log_pods_root,
                                                 const std::string& log_containers_root,
                                                 const PodRef& pod,
                                                 const std::string& container_id);

// Caches ResolvePod / ResolveContainerName answers. Only successes are cached (a pod's log
// directory may appear after its first process does); Forget() drops a pod when its processes are
// gone. Not thread-safe: one owner (the daemon's event loop).
class PodResolver {
 public:
  explicit PodResolver(std::string log_pods_root = "/var/log/pods",
                       std::string log_containers_root = "/var/log/containers",
                       size_t max_entries = 4096);

  absl::StatusOr<PodRef> Resolve(const std::string& pod_uid);
  absl::StatusOr<std::string> ContainerName(const PodRef& pod, const std::string& container_id);
  void Forget(const std::string& pod_uid);
  size_t size() const { return pods_.size() + containers_.size(); }

 private:
  std::string log_pods_root_;
  std::string log_containers_root_;
  size_t max_entries_;
  absl::flat_hash_map<std::string, PodRef> pods_;                // by pod UID
  absl::flat_hash_map<std::string, std::string> containers_;     // container id -> name
  absl::flat_hash_map<std::string, std::string> container_pod_;  // container id -> pod UID
};

}  // namespace ctxagent

#endif  // CTXAGENT_AGENT_NODE_CGROUP_H_
