// parley: Parley's operator CLI (docs/cli.md): queues and the link service's state, look-ups,
// dead letters, full resyncs and the dataflow documents.
import ArgumentParser

@main
struct Parley: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "parley", abstract: "Parley's operator tool.",
        subcommands: [
            Status.self, Top.self, Links.self, Parked.self, Failed.self, DLQ.self, Resync.self, Dataflows.self, Link.self
        ])
}
