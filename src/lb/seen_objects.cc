#include "lb/seen_objects.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>

namespace xrayd::lb {
namespace {

std::string Encode(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '%') out += "%25";
    else if (c == '\n') out += "%0A";
    else if (c == '\r') out += "%0D";
    else out.push_back(c);
  }
  return out;
}

std::string Decode(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s.compare(i, 3, "%25") == 0) out.push_back('%'), i += 2;
    else if (s[i] == '%' && s.compare(i, 3, "%0A") == 0) out.push_back('\n'), i += 2;
    else if (s[i] == '%' && s.compare(i, 3, "%0D") == 0) out.push_back('\r'), i += 2;
    else out.push_back(s[i]);
  }
  return out;
}

}  // namespace

Result<std::unique_ptr<SeenObjects>> SeenObjects::Open(const std::string& path) {
  std::set<std::string> loaded;
  {
    std::ifstream in(path, std::ios::binary);
    std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    size_t start = 0;
    for (size_t nl; (nl = content.find('\n', start)) != std::string::npos; start = nl + 1)
      if (nl > start) loaded.insert(Decode(content.substr(start, nl - start)));
    // A last line without '\n' was torn by a crash: not remembered.
  }
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return Error::Io("cannot open " + path + ": " + std::strerror(errno));
  std::unique_ptr<SeenObjects> s(new SeenObjects(fd));
  MutexLock lock(s->mu_);
  s->seen_ = std::move(loaded);
  return s;
}

SeenObjects::~SeenObjects() { ::close(fd_); }

bool SeenObjects::Contains(const std::string& identity) const {
  MutexLock lock(mu_);
  return seen_.count(identity) > 0;
}

size_t SeenObjects::size() const {
  MutexLock lock(mu_);
  return seen_.size();
}

Status SeenObjects::Remember(const std::string& identity) {
  MutexLock lock(mu_);
  if (!seen_.insert(identity).second) return OkStatus();
  const std::string line = Encode(identity) + "\n";
  size_t done = 0;
  while (done < line.size()) {
    const ssize_t n = ::write(fd_, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Error::Io(std::string("writing the LB objects-read file: ") + std::strerror(errno));
    done += static_cast<size_t>(n);
  }
  if (::fdatasync(fd_) != 0) return Error::Io(std::string("syncing the LB objects-read file: ") + std::strerror(errno));
  return OkStatus();
}

}  // namespace xrayd::lb
