// SIGINT/SIGTERM ask a command's loop to stop; the loop finishes its report.
#ifndef CTXAGENT_AGENT_SESSION_STOP_H_
#define CTXAGENT_AGENT_SESSION_STOP_H_

namespace ctxagent {

void InstallStopHandlers();
bool StopRequested();

}  // namespace ctxagent

#endif  // CTXAGENT_AGENT_SESSION_STOP_H_
