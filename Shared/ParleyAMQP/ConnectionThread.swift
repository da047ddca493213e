import CRabbitMQ
import Foundation
import ParleyCore
import Logging
import Synchronization

/// Commands from any task to one connection's thread. `send` never blocks; the thread sleeps in
/// `wait`, in `poll(2)` on its socket and an eventfd, so a command wakes it at once. The eventfd
/// is written only when the thread is actually asleep, so a busy thread costs no syscall.
final class Mailbox<Command: Sendable>: Sendable {
    private struct State {
        var items: [Command] = []
        var sleeping = false
    }
    private let state = Mutex(State())
    private let eventFD: Int32

    init() {
        eventFD = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        precondition(eventFD >= 0, "eventfd failed: \(errno)")
    }

    deinit { close(eventFD) }

    func send(_ command: Command) {
        let wake = state.withLock { s -> Bool in
            s.items.append(command)
            defer { s.sleeping = false }
            return s.sleeping
        }
        if wake {
            var one: UInt64 = 1
            _ = write(eventFD, &one, 8)
        }
    }

    var isEmpty: Bool { state.withLock { $0.items.isEmpty } }

    /// Takes every queued command, in order.
    func take() -> [Command] {
        state.withLock { s in
            guard !s.items.isEmpty else { return [] }
            defer { s.items.removeAll(keepingCapacity: true) }
            return s.items
        }
    }

    /// Sleeps until a command is queued, `socket` (if any) is readable or closed, or the
    /// timeout passes; with commands already queued it only checks the socket. Returns whether
    /// the socket is readable. Call only from the owning thread.
    func wait(socket: Int32?, timeout: Duration) -> Bool {
        let asleep = state.withLock { s -> Bool in
            guard s.items.isEmpty else { return false }
            s.sleeping = true
            return true
        }
        var fds = [pollfd(fd: eventFD, events: Int16(POLLIN), revents: 0)]
        if let socket, socket >= 0 { fds.append(pollfd(fd: socket, events: Int16(POLLIN), revents: 0)) }
        guard asleep || fds.count > 1 else { return false }
        let ms = asleep ? Int32(min(max(timeout.inSeconds * 1000, 0), 3_600_000).rounded(.up)) : 0
        _ = poll(&fds, nfds_t(fds.count), ms)
        if asleep { state.withLock { $0.sleeping = false } }
        if fds[0].revents != 0 {
            var counter: UInt64 = 0
            _ = read(eventFD, &counter, 8)
        }
        return fds.count > 1 && fds[1].revents != 0
    }
}

/// Starts `body` on a dedicated thread of its own: blocking C calls never run on Swift's
/// cooperative pool.
func startConnectionThread(name: String, _ body: @escaping @Sendable () -> Void) {
    let thread = Thread(block: body)
    thread.name = name
    thread.stackSize = 1 << 20
    thread.start()
}

/// Opens a connection to the first endpoint that answers, trying them in turn, sleeping with
/// capped exponential backoff and jitter after each failed round. `idle` is called while
/// waiting (so the owner keeps taking commands); it returns false to give up (closing).
func connect(
    configuration: AMQPConfiguration, backoff: inout Backoff, startAt index: inout Int,
    logger: Logger, idle: (Duration) -> Bool
) -> AMQPSocket? {
    var failuresThisRound = 0
    while true {
        let endpoint = configuration.endpoints[index % configuration.endpoints.count]
        do {
            let socket = try AMQPSocket(endpoint: endpoint, configuration: configuration)
            logger.info("AMQP connected", metadata: ["endpoint": "\(endpoint)", "connection": "\(configuration.connectionName)"])
            return socket
        } catch {
            logger.warning("AMQP connect failed", metadata: ["endpoint": "\(endpoint)", "error": "\(error)"])
            index += 1
            failuresThisRound += 1
            if failuresThisRound >= configuration.endpoints.count {
                failuresThisRound = 0
                if !idle(backoff.next()) { return nil }
            } else if !idle(.zero) {
                return nil
            }
        }
    }
}

/// A monotonic clock reading for the loops' heartbeat bookkeeping.
@inline(__always) func monotonicNow() -> ContinuousClock.Instant { ContinuousClock.now }

/// Whether a publisher's or consumer's connection is up with its topology declared (and, for a
/// consumer, consuming): what a service's readiness check reports.
public final class ConnectionReadiness: Sendable {
    private let flag = Atomic<Bool>(false)
    init() {}
    public var isReady: Bool { flag.load(ordering: .acquiring) }
    func set(_ ready: Bool) { flag.store(ready, ordering: .releasing) }

    /// Waits until ready; false if `timeout` passed first.
    public func wait(timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while !isReady {
            if ContinuousClock.now >= deadline { return false }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return true
    }
}

/// The half of a connection loop that publisher and consumer share: take the frames that are
/// there, sleep until the socket or the mailbox has something, and keep the heartbeat promise
/// (rabbitmq-c sends ours when asked for a frame after its deadline; a broker silent for two
/// intervals is dead).
struct SocketPump<Command: Sendable> {
    let socket: AMQPSocket
    let mailbox: Mailbox<Command>
    let heartbeat: Duration
    private var lastHeard = monotonicNow()
    private var readable = true

    init(socket: AMQPSocket, mailbox: Mailbox<Command>) {
        self.socket = socket
        self.mailbox = mailbox
        heartbeat = .seconds(Int64(socket.heartbeat))
    }

    /// Hands every frame available without blocking to `handle`.
    mutating func read(_ handle: (amqp_frame_t) throws -> Void) throws {
        guard readable || socket.hasBufferedInput else { return }
        while let frame = try socket.nextFrame() { try handle(frame) }
        socket.releaseBuffers()
        lastHeard = monotonicNow()
    }

    /// Sleeps until a command arrives or the socket is readable; with `busy` (more to send)
    /// it only looks.
    mutating func wait(busy: Bool, _ handle: (amqp_frame_t) throws -> Void) throws {
        let idle = heartbeat > .zero ? min(heartbeat / 2, .seconds(1)) : .seconds(1)
        readable = mailbox.wait(socket: socket.fileDescriptor, timeout: busy ? .zero : idle)
        guard !readable, heartbeat > .zero, monotonicNow() - lastHeard > heartbeat / 2 else { return }
        // Quiet for a while: a read attempt sends our heartbeat when one is due.
        if let frame = try socket.nextFrame() {
            lastHeard = monotonicNow()
            try handle(frame)
        } else if monotonicNow() - lastHeard > heartbeat * 2 {
            throw AMQPError.connectionLost("no heartbeat from \(socket.endpoint) for \(heartbeat * 2)")
        }
    }
}
