import Foundation

/// A setting given directly (`NAME`) or as a file that holds it (`NAME_FILE`, a Docker or
/// Kubernetes secret), so that passwords and keys need not be in the environment.
public enum Secret {
    public struct Unreadable: Error, CustomStringConvertible {
        public let description: String
    }

    /// The content of the file `NAME_FILE` names (surrounding whitespace trimmed) when that is
    /// set, else `NAME`; `nil` when neither is set or the value is empty. The error names the
    /// variable and the file, never a value.
    public static func read(_ name: String, from environment: [String: String]) throws(Unreadable) -> String? {
        if let file = environment[name + "_FILE"], !file.isEmpty {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw Unreadable(description: "\(name)_FILE: cannot read \(file)")
            }
            return text.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        return environment[name].flatMap { $0.isEmpty ? nil : $0 }
    }
}
