/* The daemon's own death by a signal, said in the journal. */
#ifndef AGENTWATCH_FATAL_SIGNALS_H
#define AGENTWATCH_FATAL_SIGNALS_H

/* For every signal whose default action ends the process, except those the daemon handles
 * itself (SIGTERM, SIGINT, SIGHUP: a graceful stop or a reload) and SIGPIPE (ignored), installs
 * a handler that writes "PREFIX: terminated by signal N (NAME)" to standard error with
 * write(2) alone, then hands the signal to the handler that was there before (the Swift
 * runtime's backtracer, or the default action). SIGKILL cannot be caught: the next run's
 * agent.start reports that run as ended without agent.stop. 0 on success, -1 with errno. */
int aw_log_fatal_signals(const char *prefix);

#endif
