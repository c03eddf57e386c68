#include "agent/node/cgroup.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#ifndef CTXAGENT_CGROUP_TESTDATA
#error "CTXAGENT_CGROUP_TESTDATA must name agent/testdata/cgroup"
#endif

namespace ctxagent {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr char kProcRoot[] = CTXAGENT_CGROUP_TESTDATA "/proc";

// The ids used by the files under testdata/cgroup/proc.
constexpr char kC1[] = "dfc0ba4268a6ae91d2cef9744ddb1c6a35a6b7c301748c61d3c940d1b056ddb2";
constexpr char kC2[] = "94f9da35954f85e0ddf617cd08ed4d7443a6c421e56d506cd379a3e5bef1532c";
constexpr char kC3[] = "0ee80e3ae38fee409503e1d037ee01cfffb4ab23ae105b64b3fa1045ce79fcb5";
constexpr char kC4[] = "ced5568a43122debc4369ffd6074b167463958f32fcc846907fb0335c6a2d3dd";
constexpr char kC5[] = "ebb31029b4424fedb2468143a41745f7391a82ac30e3f323fa4ebd8fc46a026f";
constexpr char kC6[] = "223c6cf69609ccc2ffef7d7f6bc1d308e33dcce75945fb98188efcbe207092c7";
constexpr char kC7[] = "b22148f1c8ab1591f1b3a42cbb05e414542c0f9991d0bd396025066667bee675";
constexpr char kC8[] = "5b8d4597185cff1975dbd8dae53d64602f6d73c0bad3bfbf62765fa0adf236c1";
constexpr char kU1[] = "010339fe-1a5e-4cae-8f59-8e2cfadddb1e";
constexpr char kU2[] = "f84249a2-5e70-4e6d-ad2a-4549efa60903";
constexpr char kU3[] = "45dfec06-b0ac-40ad-8e6a-56ea31094efc";
constexpr char kU4[] = "d2f1f518-91d3-4e38-9cd9-06b35ea2c468";
constexpr char kU5[] = "e2b3a639-a1f5-46a8-9c98-2d158e79fded";
constexpr char kStaticUid[] = "7a1c6a3ee0a3c8e2bd1c0ef3b5a1d2c4";

WorkloadIdentity Identify(int pid) {
  absl::StatusOr<WorkloadIdentity> id = IdentifyProcess(kProcRoot, pid);
  EXPECT_TRUE(id.ok()) << "pid " << pid << ": " << id.status();
  return id.ok() ? *id : WorkloadIdentity{};
}

TEST(IdentifyProcessTest, V2SystemdContainerdBurstable) {
  WorkloadIdentity id = Identify(101);
  EXPECT_EQ(id.container_id, kC1);
  EXPECT_EQ(id.runtime, "containerd");
  EXPECT_EQ(id.pod_uid, kU1);
  EXPECT_EQ(id.qos, "burstable");
  EXPECT_EQ(
      id.cgroup_path,
      absl::StrCat("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod",
                   "010339fe_1a5e_4cae_8f59_8e2cfadddb1e.slice/cri-containerd-", kC1, ".scope"));
  EXPECT_TRUE(id.in_container());
  EXPECT_TRUE(id.in_pod());
}

TEST(IdentifyProcessTest, V2SystemdCrioGuaranteed) {
  WorkloadIdentity id = Identify(102);
  EXPECT_EQ(id.container_id, kC2);
  EXPECT_EQ(id.runtime, "cri-o");
  EXPECT_EQ(id.pod_uid, kU2);
  EXPECT_EQ(id.qos, "guaranteed");
}

TEST(IdentifyProcessTest, V2SystemdCrioWithCrunPayloadCgroup) {
  WorkloadIdentity id = Identify(103);
  EXPECT_EQ(id.container_id, kC3);
  EXPECT_EQ(id.runtime, "cri-o");
  EXPECT_EQ(id.pod_uid, kU5);
  EXPECT_EQ(id.qos, "besteffort");
  EXPECT_THAT(id.cgroup_path, ::testing::EndsWith(".scope/container"));
}

TEST(IdentifyProcessTest, V1SystemdDockerBesteffortUsesPids) {
  WorkloadIdentity id = Identify(104);
  EXPECT_EQ(id.container_id, kC4);
  EXPECT_EQ(id.runtime, "docker");
  EXPECT_EQ(id.pod_uid, kU3);
  EXPECT_EQ(id.qos, "besteffort");
  EXPECT_THAT(id.cgroup_path, ::testing::StartsWith("/kubepods.slice/kubepods-besteffort.slice/"));
}

TEST(IdentifyProcessTest, V1CgroupfsBareIdBurstable) {
  WorkloadIdentity id = Identify(105);
  EXPECT_EQ(id.container_id, kC5);
  EXPECT_EQ(id.runtime, "");  // containerd or cri-dockerd: the path does not say
  EXPECT_EQ(id.pod_uid, kU4);
  EXPECT_EQ(id.qos, "burstable");
  EXPECT_EQ(id.cgroup_path, absl::StrCat("/kubepods/burstable/pod", kU4, "/", kC5));
}

TEST(IdentifyProcessTest, V1CgroupfsGuaranteed) {
  WorkloadIdentity id = Identify(106);
  EXPECT_EQ(id.container_id, kC6);
  EXPECT_EQ(id.pod_uid, kU3);
  EXPECT_EQ(id.qos, "guaranteed");
}

TEST(IdentifyProcessTest, V2CgroupfsCrio) {
  WorkloadIdentity id = Identify(107);
  EXPECT_EQ(id.container_id, kC7);
  EXPECT_EQ(id.runtime, "cri-o");
  EXPECT_EQ(id.pod_uid, kU4);
  EXPECT_EQ(id.qos, "besteffort");
}

TEST(IdentifyProcessTest, PlainDockerSystemdAndCgroupfs) {
  for (int pid : {108, 109}) {
    WorkloadIdentity id = Identify(pid);
    EXPECT_EQ(id.container_id, kC8) << pid;
    EXPECT_EQ(id.runtime, "docker") << pid;
    EXPECT_EQ(id.pod_uid, "") << pid;
    EXPECT_EQ(id.qos, "") << pid;
  }
  EXPECT_EQ(Identify(109).cgroup_path, absl::StrCat("/docker/", kC8));
}

TEST(IdentifyProcessTest, KindNestedPodInnermostWins) {
  WorkloadIdentity id = Identify(110);
  EXPECT_EQ(id.container_id, kC1);  // not the kind node's docker-<kC8>.scope
  EXPECT_EQ(id.runtime, "containerd");
  EXPECT_EQ(id.pod_uid, kU1);
  EXPECT_EQ(id.qos, "besteffort");
}

TEST(IdentifyProcessTest, HostProcessesAreEmptyAndOk) {
  WorkloadIdentity user = Identify(111);
  EXPECT_FALSE(user.in_container());
  EXPECT_FALSE(user.in_pod());
  EXPECT_EQ(user.runtime, "");
  EXPECT_EQ(user.cgroup_path, "/user.slice/user-1000.slice/session-3.scope");

  WorkloadIdentity ssh = Identify(112);
  EXPECT_EQ(ssh, (WorkloadIdentity{"", "", "", "", "/system.slice/ssh.service"}));

  WorkloadIdentity v1 = Identify(113);
  EXPECT_EQ(v1, (WorkloadIdentity{"", "", "", "", "/system.slice/cron.service"}));  // the pids line
}

TEST(IdentifyProcessTest, CgroupNamespaceRelativePath) {
  WorkloadIdentity id = Identify(114);
  EXPECT_EQ(id.container_id, kC1);
  EXPECT_EQ(id.pod_uid, kU1);
  EXPECT_EQ(id.qos, "burstable");
  EXPECT_THAT(id.cgroup_path, ::testing::StartsWith("/../../kubepods.slice/"));
}

TEST(IdentifyProcessTest, StaticPodMd5Uid) {
  WorkloadIdentity id = Identify(115);
  EXPECT_EQ(id.pod_uid, kStaticUid);
  EXPECT_EQ(id.qos, "guaranteed");
  EXPECT_EQ(id.container_id, kC2);
}

TEST(IdentifyProcessTest, ConmonIsInThePodButNotTheContainer) {
  WorkloadIdentity id = Identify(116);
  EXPECT_EQ(id.container_id, "");
  EXPECT_EQ(id.runtime, "cri-o");
  EXPECT_EQ(id.pod_uid, kU1);
}

TEST(IdentifyProcessTest, DeletedCgroupSuffixIsStripped) {
  WorkloadIdentity id = Identify(117);
  EXPECT_EQ(id.container_id, kC1);
  EXPECT_THAT(id.cgroup_path, ::testing::EndsWith(".scope"));
}

TEST(IdentifyProcessTest, RootlessPodman) {
  WorkloadIdentity id = Identify(118);
  EXPECT_EQ(id.container_id, kC6);
  EXPECT_EQ(id.runtime, "podman");
  EXPECT_EQ(id.pod_uid, "");
}

TEST(IdentifyProcessTest, MalformedFilesAreInvalidArgument) {
  for (int pid : {201, 202, 203, 204, 205, 206}) {
    absl::StatusOr<WorkloadIdentity> id = IdentifyProcess(kProcRoot, pid);
    EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument) << pid << ": " << id.status();
    EXPECT_THAT(id.status().message(), HasSubstr(absl::StrCat("/", pid, "/cgroup"))) << pid;
  }
}

TEST(IdentifyProcessTest, MissingPidIsNotFound) {
  EXPECT_EQ(IdentifyProcess(kProcRoot, 999).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(IdentifyProcess("/nonexistent/proc", 1).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(IdentifyProcess(kProcRoot, 0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(IdentifyProcess(kProcRoot, -5).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(IdentifyProcessTest, RealProcSelfParses) {
  // Whatever this machine is, its own /proc/self/cgroup must parse.
  absl::StatusOr<WorkloadIdentity> id = IdentifyProcess("/proc", getpid());
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_THAT(id->cgroup_path, ::testing::StartsWith("/"));
}

TEST(ParseCgroupFileTest, Malformed) {
  const std::string kId(64, 'a');
  for (const std::string& text : std::vector<std::string>{
           "", "\n\n", "0:/x\n", "::/x\n", "-1::/x\n", "+1:cpu:/x\n", " 1:cpu:/x\n",
           "99999999999999999999:cpu:/x\n", "1:cpu,,memory:/x\n", "0::\n", "0::x\n",
           "0::/ok\ngarbage\n", std::string("0::/a\0b\n", 8), std::string(2 << 20, '/')}) {
    absl::StatusOr<WorkloadIdentity> id = ParseCgroupFile(text);
    EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument)
        << "\"" << text.substr(0, 40) << "\": " << id.status();
  }
}

TEST(ParseCgroupFileTest, PathMayContainColons) {
  absl::StatusOr<WorkloadIdentity> id = ParseCgroupFile("0::/system.slice/a:b.service\n");
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->cgroup_path, "/system.slice/a:b.service");
}

TEST(ParseCgroupFileTest, NoTrailingNewlineAndRoot) {
  absl::StatusOr<WorkloadIdentity> id = ParseCgroupFile("0::/");
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(*id, (WorkloadIdentity{"", "", "", "", "/"}));
}

TEST(ParseCgroupFileTest, V1PrefersPidsThenCpuThenMemory) {
  const std::string a(64, 'a'), b(64, 'b'), c(64, 'c');
  // Docker-in-Docker style disagreement between controllers: the choice is fixed, not by line
  // order.
  absl::StatusOr<WorkloadIdentity> id =
      ParseCgroupFile(absl::StrCat("4:memory:/docker/", c, "\n3:cpu,cpuacct:/docker/", b,
                                   "\n2:pids:/docker/", a, "\n1:name=systemd:/\n"));
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(id->container_id, a);
  id = ParseCgroupFile(absl::StrCat("4:memory:/docker/", c, "\n3:cpu,cpuacct:/docker/", b, "\n"));
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(id->container_id, b);
  // A controller left at "/" does not hide the identity on another.
  id = ParseCgroupFile(absl::StrCat("2:pids:/\n1:name=systemd:/docker/", c, "\n"));
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(id->container_id, c);
  EXPECT_EQ(id->cgroup_path, absl::StrCat("/docker/", c));
}

TEST(ParseCgroupPathTest, LookalikesAreNotPods) {
  const std::string uid = "010339fe_1a5e_4cae_8f59_8e2cfadddb1e";
  for (const std::string& path : std::vector<std::string>{
           absl::StrCat("/user.slice/user-pod", uid, ".slice"),                // no kubepods level
           absl::StrCat("/kubepods.slice/kubepods-weird-pod", uid, ".slice"),  // unknown QoS
           "/kubepods.slice/kubepods-podnotauid.slice",                        // not a UID
           "/kubepods/burstable/pod1234",                                      // short UID
           absl::StrCat("/other/burstable/pod", uid),  // QoS not under kubepods
       }) {
    WorkloadIdentity id = ParseCgroupPath(path);
    EXPECT_EQ(id.pod_uid, "") << path;
    EXPECT_EQ(id.qos, "") << path;
  }
}

TEST(ParseCgroupPathTest, LookalikesAreNotContainers) {
  for (const std::string& path : std::vector<std::string>{
           "/system.slice/docker.service",
           "/system.slice/containerd.service",
           "/system.slice/docker-abc.scope",                                       // short id
           absl::StrCat("/system.slice/docker-", std::string(64, 'G'), ".scope"),  // not hex
           absl::StrCat("/x/", std::string(64, 'a'), ".scope"),  // bare id must not be a scope
           absl::StrCat("/x/", std::string(63, 'a')),
       }) {
    WorkloadIdentity id = ParseCgroupPath(path);
    EXPECT_EQ(id.container_id, "") << path;
    EXPECT_EQ(id.runtime, "") << path;
  }
}

TEST(ParseCgroupPathTest, PodCgroupItselfHasNoContainer) {
  WorkloadIdentity id = ParseCgroupPath(
      "/kubepods.slice/kubepods-burstable.slice/"
      "kubepods-burstable-pod010339fe_1a5e_4cae_8f59_8e2cfadddb1e.slice");
  EXPECT_EQ(id.pod_uid, "010339fe-1a5e-4cae-8f59-8e2cfadddb1e");
  EXPECT_EQ(id.container_id, "");
  // Inside kind: the outer node container is above the pod, so it is not the process's container.
  id = ParseCgroupPath(
      absl::StrCat("/system.slice/docker-", std::string(64, 'e'),
                   ".scope/kubelet.slice/kubelet-kubepods.slice/"
                   "kubelet-kubepods-pod010339fe_1a5e_4cae_8f59_8e2cfadddb1e.slice"));
  EXPECT_EQ(id.pod_uid, "010339fe-1a5e-4cae-8f59-8e2cfadddb1e");
  EXPECT_EQ(id.qos, "guaranteed");
  EXPECT_EQ(id.container_id, "");
  EXPECT_EQ(id.runtime, "");
}

TEST(ParseCgroupPathTest, GarbageNeverCrashes) {
  unsigned seed = 12345;
  using std::string_literals::operator""s;
  const std::string alphabet = "/-_.:abcdef0123456789kubepodsslicescopecri-containerdcrio\n\0 "s;
  for (int i = 0; i < 20000; ++i) {
    std::string s;
    int len = static_cast<int>((seed = seed * 1103515245 + 12345) % 300);
    for (int j = 0; j < len; ++j) {
      seed = seed * 1103515245 + 12345;
      s.push_back(alphabet[(seed >> 16) % alphabet.size()]);
    }
    (void)ParseCgroupPath(s);
    (void)ParseCgroupFile(s);
    (void)ParseCgroupFile(absl::StrCat("0::/", s));
  }
}

// --- /var/log/pods and /var/log/containers -------------------------------------------------------

class PodLogsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "cgroup_test.XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    root_ = tmpl;
    pods_ = root_ / "var/log/pods";
    containers_ = root_ / "var/log/containers";
    fs::create_directories(pods_);
    fs::create_directories(containers_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  // What kubelet creates for a started container: the pod/container log dirs, the 0.log file, and
  // the legacy symlink /var/log/containers/<pod>_<ns>_<container>-<id>.log -> 0.log.
  void StartContainer(const std::string& ns, const std::string& pod, const std::string& uid,
                      const std::string& container, const std::string& id, bool symlink = true) {
    fs::path dir = pods_ / absl::StrCat(ns, "_", pod, "_", uid) / container;
    fs::create_directories(dir);
    std::ofstream(dir / "0.log") << "2024-01-01T00:00:00Z stdout F hello\n";
    if (symlink) {
      fs::create_symlink(dir / "0.log",
                         containers_ / absl::StrCat(pod, "_", ns, "_", container, "-", id, ".log"));
    }
  }

  fs::path root_, pods_, containers_;
};

TEST_F(PodLogsTest, ResolvesNamespaceAndName) {
  StartContainer("kube-system", "coredns-5d78c9869d-8xk2p", kU1, "coredns", kC1);
  StartContainer("default", "web-0", kU2, "app", kC2);
  StartContainer("kube-system", "etcd-node-1", kStaticUid, "etcd", kC3);
  fs::create_directories(pods_ / kU3);  // pre-1.14 layout: no names

  absl::StatusOr<PodRef> pod = ResolvePod(pods_.string(), kU1);
  ASSERT_TRUE(pod.ok()) << pod.status();
  EXPECT_EQ(*pod, (PodRef{"kube-system", "coredns-5d78c9869d-8xk2p", kU1}));
  pod = ResolvePod(pods_.string(), kStaticUid);
  ASSERT_TRUE(pod.ok()) << pod.status();
  EXPECT_EQ(pod->pod_name, "etcd-node-1");

  EXPECT_EQ(ResolvePod(pods_.string(), kU3).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ResolvePod(pods_.string(), kU4).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ResolvePod((root_ / "nope").string(), kU1).status().code(),
            absl::StatusCode::kNotFound);
  for (const char* bad : {"", "..", "a/b", "a_b"}) {
    EXPECT_EQ(ResolvePod(pods_.string(), bad).status().code(), absl::StatusCode::kInvalidArgument);
  }
}

TEST_F(PodLogsTest, ContainerNameFromLegacySymlink) {
  StartContainer("default", "web-0", kU2, "init-db", kC1);
  StartContainer("default", "web-0", kU2, "app", kC2);
  StartContainer("default", "web-0", kU2, "istio-proxy", kC3);
  PodRef pod{"default", "web-0", kU2};
  absl::StatusOr<std::string> name =
      ResolveContainerName(pods_.string(), containers_.string(), pod, kC2);
  ASSERT_TRUE(name.ok()) << name.status();
  EXPECT_EQ(*name, "app");
  name = ResolveContainerName(pods_.string(), containers_.string(), pod, kC3);
  ASSERT_TRUE(name.ok()) << name.status();
  EXPECT_EQ(*name, "istio-proxy");
  // An id with no symlink in a multi-container pod: unknown.
  EXPECT_EQ(ResolveContainerName(pods_.string(), containers_.string(), pod, kC4).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(ResolveContainerName(pods_.string(), containers_.string(), pod, "abc").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(PodLogsTest, ContainerNameFromSingleContainerDir) {
  StartContainer("prod", "api-7f9c", kU4, "server", kC5, /*symlink=*/false);
  absl::StatusOr<std::string> name = ResolveContainerName(
      pods_.string(), (root_ / "missing").string(), PodRef{"prod", "api-7f9c", kU4}, kC5);
  ASSERT_TRUE(name.ok()) << name.status();
  EXPECT_EQ(*name, "server");
  EXPECT_EQ(
      ResolveContainerName(pods_.string(), containers_.string(), PodRef{"prod", "gone", kU5}, kC5)
          .status()
          .code(),
      absl::StatusCode::kNotFound);
}

TEST_F(PodLogsTest, ResolverCachesAndForgets) {
  StartContainer("default", "web-0", kU2, "app", kC2);
  PodResolver resolver(pods_.string(), containers_.string());
  absl::StatusOr<PodRef> pod = resolver.Resolve(kU2);
  ASSERT_TRUE(pod.ok()) << pod.status();
  ASSERT_TRUE(resolver.ContainerName(*pod, kC2).ok());
  EXPECT_EQ(resolver.size(), 2u);

  // Cached: still answers after the files are gone.
  fs::remove_all(pods_ / absl::StrCat("default_web-0_", kU2));
  fs::remove(containers_ / absl::StrCat("web-0_default_app-", kC2, ".log"));
  pod = resolver.Resolve(kU2);
  ASSERT_TRUE(pod.ok());
  EXPECT_EQ(pod->pod_name, "web-0");
  EXPECT_EQ(*resolver.ContainerName(*pod, kC2), "app");

  resolver.Forget(kU2);
  EXPECT_EQ(resolver.size(), 0u);
  EXPECT_EQ(resolver.Resolve(kU2).status().code(), absl::StatusCode::kNotFound);

  // Misses are not cached: the directory may appear later.
  StartContainer("default", "web-1", kU5, "app", kC3);
  pod = resolver.Resolve(kU5);
  ASSERT_TRUE(pod.ok()) << pod.status();
  EXPECT_EQ(pod->pod_name, "web-1");
}

TEST_F(PodLogsTest, EndToEndFromProcToNames) {
  // pid 101 is a burstable containerd pod; lay out its kubelet log tree.
  StartContainer("shop", "checkout-6c8f7b9d4-q2w7x", kU1, "checkout", kC1);
  StartContainer("shop", "checkout-6c8f7b9d4-q2w7x", kU1, "envoy", kC2);
  absl::StatusOr<WorkloadIdentity> id = IdentifyProcess(kProcRoot, 101);
  ASSERT_TRUE(id.ok()) << id.status();
  PodResolver resolver(pods_.string(), containers_.string());
  absl::StatusOr<PodRef> pod = resolver.Resolve(id->pod_uid);
  ASSERT_TRUE(pod.ok()) << pod.status();
  EXPECT_EQ(pod->pod_namespace, "shop");
  EXPECT_EQ(pod->pod_name, "checkout-6c8f7b9d4-q2w7x");
  absl::StatusOr<std::string> name = resolver.ContainerName(*pod, id->container_id);
  ASSERT_TRUE(name.ok()) << name.status();
  EXPECT_EQ(*name, "checkout");
}

}  // namespace
}  // namespace ctxagent
