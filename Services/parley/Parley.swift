// parley: Parley's operator CLI (docs/cli.md): the dataflow documents and the link service's
// state; queues, dead-letter replay and resync will be further subcommands.
import ArgumentParser

@main
struct Parley: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "parley", abstract: "Parley's operator tool.", subcommands: [Dataflows.self, Link.self])
}
