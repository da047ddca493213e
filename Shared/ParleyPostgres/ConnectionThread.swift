import Foundation

/// A dedicated OS thread (pthread) with a FIFO job queue (NSCondition = lock + condition variable).
///
/// Every blocking libpq call of one connection runs here, never on Swift's cooperative
/// thread pool, and never on two threads: jobs run one after another on this thread only.
final class ConnectionThread: @unchecked Sendable {
    // Invariant: `jobs` and `stopping` are only read or written while holding `condition`.
    private let condition = NSCondition()
    private var jobs: [@Sendable () -> Void] = []
    private var stopping = false
    let name: String

    init(name: String) {
        self.name = name
        // A detached pthread that holds a +1 reference to `self` until its loop ends (after
        // `stop()` drained the queue), so the worker cannot vanish while jobs are pending.
        let context = Unmanaged.passRetained(self).toOpaque()
        #if canImport(Glibc) || canImport(Musl)
            var tid = pthread_t()
        #else
            var tid: pthread_t? = nil
        #endif
        let rc = pthread_create(
            &tid, nil,
            { arg in
                #if canImport(Glibc) || canImport(Musl)
                    let worker = Unmanaged<ConnectionThread>.fromOpaque(arg!).takeRetainedValue()
                #else
                    let worker = Unmanaged<ConnectionThread>.fromOpaque(arg).takeRetainedValue()
                #endif
                worker.loop()
                return nil
            }, context)
        precondition(rc == 0, "pthread_create failed: \(rc)")
        #if canImport(Glibc) || canImport(Musl)
            pthread_detach(tid)
        #else
            pthread_detach(tid!)
        #endif
    }

    /// Queues a job; false if the thread is stopping (the job will never run).
    @discardableResult
    func enqueue(_ job: @escaping @Sendable () -> Void) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        if stopping { return false }
        jobs.append(job)
        condition.signal()
        return true
    }

    /// Runs `body` on the thread and awaits its result.
    func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let accepted = enqueue {
                do { continuation.resume(returning: try body()) } catch { continuation.resume(throwing: error) }
            }
            if !accepted {
                continuation.resume(throwing: PostgresError(kind: .closed, message: "connection is closed"))
            }
        }
    }

    /// Queues `last` as the final job; jobs queued before it still run, later ones are refused.
    /// Returns false (and drops `last`) if the thread was already stopping.
    @discardableResult
    func stop(after last: @escaping @Sendable () -> Void) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        if stopping { return false }
        jobs.append(last)
        stopping = true
        condition.signal()
        return true
    }

    private func loop() {
        while true {
            condition.lock()
            while jobs.isEmpty && !stopping { condition.wait() }
            if jobs.isEmpty {  // stopping and drained
                condition.unlock()
                return
            }
            let job = jobs.removeFirst()
            condition.unlock()
            job()
        }
    }
}
