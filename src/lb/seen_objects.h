// SeenObjects: which log objects (files, S3 objects) have been read, remembered across restarts so
// each is read once.
//
// On-disk format: DATA_DIR/lb_objects_read, a text file of one identity per line (a source's own
// string: "s3://bucket/key etag", "file:path size mtime"), with '%', '\n' and '\r' written as %25,
// %0A, %0D. Appended and fdatasync'ed after each object, before the next is read, so a crash loses at
// most the object being read (which is then read again: its segments' ids are derived from the lines,
// so the store replaces rather than duplicates them). A torn last line is ignored on load.
//
// Thread-safe (the sources' threads share one). Owns the file descriptor; no thread.
#pragma once

#include <memory>
#include <set>
#include <string>

#include "common/result.h"
#include "common/thread_annotations.h"

namespace xrayd::lb {

class SeenObjects {
 public:
  // Loads `path` (missing: empty) and opens it for appending.
  static Result<std::unique_ptr<SeenObjects>> Open(const std::string& path);
  ~SeenObjects();

  bool Contains(const std::string& identity) const;
  // Records `identity`; an I/O error is returned (the object will then be read again after a restart).
  Status Remember(const std::string& identity);
  size_t size() const;

 private:
  explicit SeenObjects(int fd) : fd_(fd) {}

  const int fd_;  // constant after construction; writes under mu_
  mutable Mutex mu_;
  std::set<std::string> seen_ XRAYD_GUARDED_BY(mu_);
};

}  // namespace xrayd::lb
