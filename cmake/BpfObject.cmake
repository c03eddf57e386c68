# bpf_object(NAME SOURCE): compiles SOURCE with clang for the BPF target (CO-RE, BTF from the running
# kernel's vmlinux.h), generates its skeleton with `bpftool gen skeleton`, and exposes an INTERFACE
# target NAME_skel whose include directory holds NAME.skel.h.
find_program(BPF_CLANG NAMES clang-14 clang REQUIRED)
find_program(BPFTOOL NAMES bpftool PATHS /usr/sbin /sbin REQUIRED)

set(BPF_GEN_DIR ${CMAKE_BINARY_DIR}/bpf_gen)
set(VMLINUX_H ${BPF_GEN_DIR}/vmlinux.h)
set(VMLINUX_BTF /sys/kernel/btf/vmlinux CACHE FILEPATH "BTF used to generate vmlinux.h")
# Generated once at configure time: the kernel's types do not change during a build.
if(NOT EXISTS ${VMLINUX_H})
  file(MAKE_DIRECTORY ${BPF_GEN_DIR})
  execute_process(COMMAND ${BPFTOOL} btf dump file ${VMLINUX_BTF} format c
                  OUTPUT_FILE ${VMLINUX_H} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    file(REMOVE ${VMLINUX_H})
    message(FATAL_ERROR "bpftool could not dump ${VMLINUX_BTF} (kernel without BTF?)")
  endif()
endif()

function(bpf_object name source)
  set(obj ${BPF_GEN_DIR}/${name}.bpf.o)
  set(skel ${BPF_GEN_DIR}/${name}.skel.h)
  get_filename_component(src_abs ${source} ABSOLUTE)
  get_filename_component(src_dir ${src_abs} DIRECTORY)
  add_custom_command(
    OUTPUT ${obj}
    COMMAND ${BPF_CLANG} -g -O2 -target bpf -D__TARGET_ARCH_x86 -Wall -Werror
            -I${BPF_GEN_DIR} -I${src_dir} -I${CMAKE_SOURCE_DIR} -c ${src_abs} -o ${obj}
    DEPENDS ${src_abs} ${VMLINUX_H} ${ARGN}
    IMPLICIT_DEPENDS C ${src_abs}
    COMMENT "Compiling BPF object ${name}"
    VERBATIM)
  add_custom_command(
    OUTPUT ${skel}
    COMMAND ${BPFTOOL} gen skeleton ${obj} name ${name} > ${skel}
    DEPENDS ${obj}
    COMMENT "Generating BPF skeleton ${name}.skel.h"
    VERBATIM)
  add_custom_target(${name}_skel_gen DEPENDS ${skel})
  add_library(${name}_skel INTERFACE)
  add_dependencies(${name}_skel ${name}_skel_gen)
  target_include_directories(${name}_skel INTERFACE ${BPF_GEN_DIR})
  target_link_libraries(${name}_skel INTERFACE PkgConfig::LIBBPF)
endfunction()
