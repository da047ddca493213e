import ArgumentParser
import Foundation
import ParleyMapping

/// `parley dataflows`: writes the dataflow documents generated from the mapping tables, or with
/// `--check` only reports which committed ones are stale (docs/dataflows/README.md).
struct Dataflows: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dataflows",
        abstract: "Generate the dataflow documents (docs/dataflows/*.rst) from the mapping tables.",
        aliases: ["docs"])

    @Option(help: "The repository root (mappings/, contracts). Default: the current directory.")
    var repository: String = "."

    @Option(help: "Where the documents go. Default: <repository>/docs/dataflows.")
    var output: String?

    @Flag(help: "Write nothing; exit non-zero naming every document that differs from the generated one.")
    var check = false

    func run() throws {
        let root = URL(fileURLWithPath: repository).standardizedFileURL
        let directory = output.map { URL(fileURLWithPath: $0) } ?? root.appendingPathComponent("docs/dataflows")
        let documents: [(fileName: String, contents: String)]
        do {
            documents = try DataflowDocument.generate(repositoryRoot: root)
        } catch {
            // Not a usage error: no usage text, exit status 1.
            throw DataflowDocumentError("cannot generate the dataflow documents:\n\(error)")
        }
        if check {
            let stale = documents.filter { document in
                let existing = try? String(contentsOf: directory.appendingPathComponent(document.fileName), encoding: .utf8)
                return existing != document.contents
            }
            for document in stale {
                FileHandle.standardError.write(Data("stale: \(directory.appendingPathComponent(document.fileName).path)\n".utf8))
            }
            if !stale.isEmpty {
                FileHandle.standardError.write(Data("run `make dataflows` to regenerate\n".utf8))
                throw ExitCode.failure
            }
            print("dataflow documents up to date (\(documents.count))")
            return
        }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        for document in documents {
            let url = directory.appendingPathComponent(document.fileName)
            try Data(document.contents.utf8).write(to: url, options: .atomic)
            print("wrote \(url.path)")
        }
    }
}
