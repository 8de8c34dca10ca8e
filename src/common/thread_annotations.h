// Clang thread-safety annotations (-Wthread-safety), as LevelDB and Abseil use them.
//
// Mark every mutex-guarded field XRAYD_GUARDED_BY(mu_) and every function that expects the lock
// held XRAYD_REQUIRES(mu_); clang then checks the locking at compile time. Use xrayd::Mutex and
// xrayd::MutexLock (annotated wrappers of std::mutex / std::lock_guard); std::mutex itself carries
// no capability attributes in libstdc++. Under GCC the macros expand to nothing.
#pragma once

#include <condition_variable>
#include <mutex>

#if defined(__clang__)
#define XRAYD_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define XRAYD_THREAD_ANNOTATION(x)
#endif

#define XRAYD_CAPABILITY(x) XRAYD_THREAD_ANNOTATION(capability(x))
#define XRAYD_SCOPED_CAPABILITY XRAYD_THREAD_ANNOTATION(scoped_lockable)
#define XRAYD_GUARDED_BY(x) XRAYD_THREAD_ANNOTATION(guarded_by(x))
#define XRAYD_PT_GUARDED_BY(x) XRAYD_THREAD_ANNOTATION(pt_guarded_by(x))
#define XRAYD_REQUIRES(...) XRAYD_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define XRAYD_EXCLUDES(...) XRAYD_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define XRAYD_ACQUIRE(...) XRAYD_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define XRAYD_RELEASE(...) XRAYD_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define XRAYD_NO_THREAD_SAFETY_ANALYSIS XRAYD_THREAD_ANNOTATION(no_thread_safety_analysis)

namespace xrayd {

// std::mutex with the capability attribute, so clang can check GUARDED_BY fields.
class XRAYD_CAPABILITY("mutex") Mutex {
 public:
  void Lock() XRAYD_ACQUIRE() { mu_.lock(); }
  void Unlock() XRAYD_RELEASE() { mu_.unlock(); }
  // For std::condition_variable: wait on native() through a std::unique_lock adopted from a held
  // MutexLock (see MutexLock::Wait).
  std::mutex& native() { return mu_; }

 private:
  std::mutex mu_;
};

// Scoped lock of a Mutex; Wait* wrap a condition variable on it. A predicate that reads guarded
// fields says so: lock.Wait(cv, [this]() XRAYD_REQUIRES(mu_) { return stopping_; }).
class XRAYD_SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mu) XRAYD_ACQUIRE(mu) : mu_(mu) { mu_.Lock(); }
  ~MutexLock() XRAYD_RELEASE() {
    if (held_) mu_.Unlock();
  }
  // Lets go of the lock for a slow step (a fetch, a send) and takes it back; clang tracks both.
  void Unlock() XRAYD_RELEASE() {
    mu_.Unlock();
    held_ = false;
  }
  void Lock() XRAYD_ACQUIRE() {
    mu_.Lock();
    held_ = true;
  }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

  // Waits on `cv` with the lock held before and after, as std::condition_variable::wait.
  template <typename Predicate>
  void Wait(std::condition_variable& cv, Predicate pred) {
    std::unique_lock<std::mutex> lock(mu_.native(), std::adopt_lock);
    cv.wait(lock, pred);
    lock.release();
  }
  template <typename Duration, typename Predicate>
  bool WaitFor(std::condition_variable& cv, Duration d, Predicate pred) {
    std::unique_lock<std::mutex> lock(mu_.native(), std::adopt_lock);
    const bool r = cv.wait_for(lock, d, pred);
    lock.release();
    return r;
  }
  // One wait without a predicate (it may wake spuriously): for loops that re-check guarded state
  // themselves, so clang analyses that state in the caller, with the lock held.
  void WaitOnce(std::condition_variable& cv) {
    std::unique_lock<std::mutex> lock(mu_.native(), std::adopt_lock);
    cv.wait(lock);
    lock.release();
  }
  template <typename TimePoint>
  void WaitOnceUntil(std::condition_variable& cv, TimePoint t) {
    std::unique_lock<std::mutex> lock(mu_.native(), std::adopt_lock);
    cv.wait_until(lock, t);
    lock.release();
  }
  template <typename TimePoint, typename Predicate>
  bool WaitUntil(std::condition_variable& cv, TimePoint t, Predicate pred) {
    std::unique_lock<std::mutex> lock(mu_.native(), std::adopt_lock);
    const bool r = cv.wait_until(lock, t, pred);
    lock.release();
    return r;
  }

 private:
  Mutex& mu_;
  bool held_ = true;
};

}  // namespace xrayd
