// Package context's constructors, and how the agent observes each: the contexts they make pass the
// propagateCancel probe (symbols/probe_table.h) or are read in a parent chain, and the closures
// they return as a context's cancel func are what a heap mark looks for
// (agent/heap/context_facts.h: a cancel func nothing reaches is a lost cancel). `ctxagent symbols`
// lists the plan per binary.
#ifndef CTXAGENT_SYMBOLS_CONTEXT_API_H_
#define CTXAGENT_SYMBOLS_CONTEXT_API_H_

#include <cstdint>
#include <string>
#include <vector>

#include "symbols/buildinfo.h"
#include "symbols/pclntab.h"

namespace ctxagent::symbols {

struct ContextConstructor {
  const char* name;
  int since;  // first Go 1.x minor release with it
  const char* observed;
  // The closures it returns as the context's cancel func (or stop func), by their pclntab names.
  // Closures are numbered in source order: WithDeadline[Cause].func1 is returned when the deadline
  // has passed, func2 is the timer's callback (a timer that will fire is no held cancel func),
  // func3 the usual return; AfterFunc.func1 is `stop` (func1.1 the once.Do inside it).
  const char* cancel_funcs[2] = {nullptr, nullptr};
};

inline constexpr ContextConstructor kContextConstructors[] = {
    {"context.WithCancel", 7, "propagateCancel probe: a cancelCtx", {"context.WithCancel.func1"}},
    {"context.WithCancelCause",
     20,
     "propagateCancel probe: a cancelCtx",
     {"context.WithCancelCause.func1"}},
    // From 1.21 WithDeadline calls WithDeadlineCause, whose closures it returns.
    {"context.WithDeadline",
     7,
     "propagateCancel probe: a timerCtx",
     {"context.WithDeadline.func1", "context.WithDeadline.func3"}},
    {"context.WithDeadlineCause",
     21,
     "propagateCancel probe: a timerCtx",
     {"context.WithDeadlineCause.func1", "context.WithDeadlineCause.func3"}},
    {"context.WithTimeout", 7, "through WithDeadline[Cause]"},
    {"context.WithTimeoutCause", 21, "through WithDeadlineCause"},
    {"context.AfterFunc",
     21,
     "propagateCancel probe: an afterFuncCtx",
     {"context.AfterFunc.func1"}},
    {"context.WithoutCancel", 21, "read in parent chains: a link no cancellation crosses"},
    {"context.WithValue", 7, "read in parent chains: a layer cancellation crosses"},
};

// One constructor in one binary.
struct ConstructorPlan {
  const ContextConstructor* constructor;
  bool in_release = false;  // the binary's Go release has it
  bool linked = false;      // its own function is in pclntab (else unused or inlined everywhere)
  std::vector<Function> cancel_funcs;  // its cancel closures found in pclntab
};

std::vector<ConstructorPlan> PlanConstructors(const Pclntab& pclntab, const GoVersion& version);

// The entry PCs (link-time) of every cancel closure in the binary, sorted.
std::vector<uint64_t> CancelFuncEntries(const std::vector<ConstructorPlan>& plans);

}  // namespace ctxagent::symbols

#endif  // CTXAGENT_SYMBOLS_CONTEXT_API_H_
