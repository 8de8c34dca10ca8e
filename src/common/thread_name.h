// Names the calling thread (what `top -H`, `ps -L`, gdb and perf show), so an operator can tell the
// receiver from the senders. Linux keeps at most 15 characters; longer names are cut.
#pragma once

#include <pthread.h>

#include <string>

namespace xrayd {

inline void NameThisThread(const std::string& name) {
  (void)pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());  // best effort: only a label
}

}  // namespace xrayd
