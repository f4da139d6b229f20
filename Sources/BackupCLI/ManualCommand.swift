// `kaleem-backup generate-manual`: the manual page (mdoc, section 1), written by the binary itself from its own
// command tree (argument-parser's help dump), so that the .deb's page is always the binary's, with what
// argument-parser's generate-manual plugin leaves out: EXIT STATUS, ENVIRONMENT, FILES, and the options of each
// kind of source that `restore` takes.
import ArgumentParser
import BackupCore
import BackupEngine
import Foundation

struct ManualCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate-manual",
        abstract: "Write the manual page (mdoc, section 1): every command and option, EXIT STATUS, ENVIRONMENT, FILES.",
        discussion: "Read it with: kaleem-backup generate-manual | man -l -"
    )

    @OptionGroup var options: GlobalOptions

    @Option(help: "Write kaleem-backup.1 into this directory (created if missing) instead of standard output.")
    var outputDirectory: String?

    @Option(help: "The page's date, YYYY-MM-DD (default: $SOURCE_DATE_EPOCH's day, else today; UTC).")
    var date: String?

    func validate() throws {
        if let date, Manual.day(date) == nil { throw ValidationError("--date must be YYYY-MM-DD") }
    }

    func run() throws {
        // A $SOURCE_DATE_EPOCH that is no day (negative, past 9999, not a number) falls back to today.
        let day = date.flatMap(Manual.day) ?? Manual.day(Manual.defaultDay()) ?? Manual.day(String(Timestamps.iso8601(Date()).prefix(10)))!
        let page = try Manual.render(date: day)
        guard let outputDirectory else {
            StandardStream.text(page)
            return
        }
        let path = (outputDirectory as NSString).appendingPathComponent("kaleem-backup.1")
        do {
            try FileManager.default.createDirectory(atPath: outputDirectory, withIntermediateDirectories: true)
            // The page holds no secret: readable by all, as /usr/share/man is.
            try Data(page.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw BackupFailure("the manual page could not be written to \(path): \((error as NSError).localizedFailureReason ?? (error as NSError).localizedDescription)",
                                exitStatus: .failed, hint: "name a directory you can write (it is created if missing), or write to standard output: kaleem-backup generate-manual > kaleem-backup.1")
        }
        chmod(path, 0o644)
    }
}

/// The renderer: the command tree as argument-parser describes it (`--experimental-dump-help`, decoded here
/// into the few fields a page needs), then mdoc(7).
enum Manual {
    struct Dump: Decodable { var command: Command }
    struct Command: Decodable {
        var commandName: String
        var abstract: String?
        var discussion: String?
        var shouldDisplay: Bool?
        var arguments: [Argument]?
        var subcommands: [Command]?
    }
    struct Argument: Decodable {
        struct Name: Decodable { var kind: String; var name: String }
        var kind: String
        var names: [Name]?
        var valueName: String?
        var abstract: String?
        var discussion: String?
        var shouldDisplay: Bool?
        var isOptional: Bool?
        var isRepeating: Bool?
        var defaultValue: String?
        var allValues: [String]?
    }

    /// What each exit code means: the one table (README, `--help` texts and this page say the same).
    static let exitStatus: [(ExitStatus, String)] = [
        (.ok, "Success (backup: every source backed up; restore: restored or planned; status --check: nothing wrong)."),
        (.failed, "Failed: every source of a backup failed, a restore or drill failed, or output could not be written; status --check: a source past its RPO, a failed last run or an overdue drill."),
        (.usage, "Usage or policy error: a bad option, a policy that does not parse or whose checks fail, a target that needs --yes."),
        (.partial, "Partial: some sources of the run failed, the others were backed up."),
        (.integrity, "Integrity failure: a backup does not verify (corrupt, truncated, or not what its manifest says); status --check: a corrupt backup."),
        (.locked, "Another run holds the repository lock (a scheduled run waits and retries within its window)."),
    ]

    static func render(date: String) throws -> String {
        let dump: Dump
        do {
            _ = try KaleemBackup.parseAsRoot(["--experimental-dump-help"])
            throw BackupFailure("argument-parser did not describe the commands", exitStatus: .failed)
        } catch let error where !(error is BackupFailure) {
            let json = KaleemBackup.fullMessage(for: error)
            dump = try JSONDecoder().decode(Dump.self, from: Data(json.utf8))
        }
        let root = dump.command
        var out = """
        .Dd \(date)
        .Dt KALEEM-BACKUP 1
        .Os
        .Sh NAME
        .Nm kaleem-backup
        .Nd \(line(root.abstract ?? ""))
        .Sh SYNOPSIS
        .Nm
        .Ar command
        .Op Ar options

        """
        out += ".Sh DESCRIPTION\n" + text(root.discussion ?? "")
        out += ".Pp\nThe options every command takes:\n" + options(globalArguments(root))
        out += ".Sh COMMANDS\n.Bl -tag -width 6n\n"
        for command in (root.subcommands ?? []) where command.shouldDisplay != false && command.commandName != "help" {
            out += commandEntry(command, prefix: "", global: Set(globalArguments(root).map(title)))
        }
        out += ".El\n"
        out += ".Sh EXIT STATUS\n.Bl -tag -width 4n\n"
        for (status, meaning) in exitStatus { out += ".It \(status.rawValue)\n" + text(meaning) }
        out += ".El\n"
        out += """
        .Sh ENVIRONMENT
        .Bl -tag -width 6n
        .It Ev KALEEM_BACKUP_POLICY
        The policy file when --policy is not given.
        .It Ev KALEEM_BACKUP_LOG_LEVEL
        The log level (trace, debug, info, notice, warning, error, critical) over --verbose and --quiet.
        .It Ev REDISCLI_AUTH
        The password of a restore's --to-url Redis server, as redis-cli reads it.
        .El
        .Sh FILES
        .Bl -tag -width 6n
        .It Pa policies/local.yml , Pa /etc/kaleem-backup/policy.yml
        The policy, looked up in this order after --policy and KALEEM_BACKUP_POLICY.
        .It Pa <repository>/catalog.sqlite
        The catalog of runs, backups, verifies, drills and restores.
        .It Pa /var/lib/prometheus/node-exporter/kaleem_backup.prom
        The metrics, for node_exporter's textfile collector.
        .El
        .Sh SEE ALSO
        .Xr cron 8 ,
        .Xr systemd.timer 5 ,
        .Xr redis-server 1 ,
        .Xr mongodump 1

        """
        return out
    }

    /// The options of the root's first subcommand that every command shares (GlobalOptions).
    static func globalArguments(_ root: Command) -> [Argument] {
        let backup = root.subcommands?.first { $0.commandName == "backup" }
        let names: Set<String> = ["policy", "json", "verbose", "quiet", "log-format"]
        return (backup?.arguments ?? []).filter { arg in arg.names?.contains { names.contains($0.name) } ?? false }
    }

    static func commandEntry(_ command: Command, prefix: String, global: Set<String>) -> String {
        let name = prefix.isEmpty ? command.commandName : prefix + " " + command.commandName
        var out = ".It Cm \(name)\n" + text(command.abstract ?? "")
        if let discussion = command.discussion, !discussion.isEmpty { out += ".Pp\n" + text(discussion) }
        let own = (command.arguments ?? []).filter { $0.shouldDisplay != false && !global.contains(title($0)) && !($0.names ?? []).contains { ["help", "version"].contains($0.name) } }
        if !own.isEmpty { out += options(own) }
        if command.commandName == "restore" && prefix.isEmpty {
            for section in SourceKinds.restoreSections where !section.options.isEmpty {
                out += ".Pp\nOptions of \(section.kind) sources (\(line(section.summary))):\n.Bl -tag -width 6n\n"
                for spec in section.options {
                    out += ".It Fl -\(spec.name)" + (spec.valueName.map { " Ar \(macroWord($0))" } ?? "") + "\n"
                    out += text(spec.help + (spec.repeatable ? " (repeatable)" : "") + (spec.defaultValue.map { " (default: \($0))" } ?? ""))
                }
                out += ".El\n"
            }
        }
        if ["ls", "diff"].contains(command.commandName) && prefix.isEmpty {
            out += ".Pp\nThe filters of the kinds of source:\n.Bl -tag -width 6n\n"
            for (_, filters) in SourceKinds.contentFilters {
                for filter in filters {
                    out += ".It Fl -\(filter.name)" + (filter.valueName.map { " Ar \(macroWord($0))" } ?? "") + "\n" + text(filter.help)
                }
            }
            out += ".El\n"
        }
        let subcommands = (command.subcommands ?? []).filter { $0.shouldDisplay != false && $0.commandName != "help" }
        if !subcommands.isEmpty {
            out += ".Bl -tag -width 6n\n"
            for sub in subcommands { out += commandEntry(sub, prefix: name, global: global) }
            out += ".El\n"
        }
        return out
    }

    static func title(_ arg: Argument) -> String { arg.names?.first?.name ?? arg.valueName ?? "" }

    static func options(_ arguments: [Argument]) -> String {
        var out = ".Bl -tag -width 6n\n"
        for arg in arguments {
            out += ".It " + item(arg) + "\n"
            var help = arg.abstract ?? ""
            if let values = arg.allValues, !values.isEmpty { help += " (values: \(values.joined(separator: ", ")))" }
            if let value = arg.defaultValue, arg.kind == "option" { help += " (default: \(value))" }
            if arg.isRepeating == true && arg.kind != "positional" && !help.contains("repeatable") { help += " (repeatable)" }
            out += text(help)
            if let discussion = arg.discussion, !discussion.isEmpty { out += text(discussion) }
        }
        return out + ".El\n"
    }

    /// `Fl -policy Ar policy`, `Fl v , Fl -verbose`, `Ar source`.
    static func item(_ arg: Argument) -> String {
        let value = macroWord(arg.valueName ?? "value")
        if arg.kind == "positional" { return "Ar \(value)" }
        let flags = (arg.names ?? []).map { name -> String in
            switch name.kind {
            case "short": return "Fl \(macroWord(name.name))"
            case "longWithSingleDash": return "Fl \(macroWord(name.name))"
            default: return "Fl -\(macroWord(name.name))"
            }
        }.joined(separator: " , ")
        return arg.kind == "option" ? flags + " Ar \(value)" : flags
    }

    /// A word on a macro line: escaped so that mdoc does not read it as a macro or a delimiter.
    static func macroWord(_ word: String) -> String {
        "\\&" + ascii(word.replacingOccurrences(of: "\\", with: "\\e").replacingOccurrences(of: " ", with: "\\ "))
    }

    /// Non-ASCII as roff escapes (`…` is `\[u2026]`): the page reads the same under any locale and groff needs
    /// no preprocessor.
    static func ascii(_ s: String) -> String {
        var out = ""
        for scalar in s.unicodeScalars {
            if scalar.isASCII { out.unicodeScalars.append(scalar) } else { out += String(format: "\\[u%04X]", scalar.value) }
        }
        return out
    }

    /// One line of running text for a macro's argument (`.Nd`).
    static func line(_ s: String) -> String {
        ascii(s.replacingOccurrences(of: "\\", with: "\\e").replacingOccurrences(of: "\n", with: " "))
    }

    /// Running text: backslashes escaped, and a line starting with `.` or `'` protected (it would be a request).
    static func text(_ s: String) -> String {
        var out = ""
        for raw in s.split(separator: "\n", omittingEmptySubsequences: false) {
            let escaped = ascii(raw.replacingOccurrences(of: "\\", with: "\\e"))
            if escaped.trimmingCharacters(in: .whitespaces).isEmpty { out += ".Pp\n"; continue }
            out += (escaped.hasPrefix(".") || escaped.hasPrefix("'") ? "\\&" : "") + escaped + "\n"
        }
        return out
    }

    static func day(_ s: String) -> String? {
        let parts = s.split(separator: "-")
        guard parts.count == 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2,
              let y = Int(parts[0]), let m = Int(parts[1]), let d = Int(parts[2]),
              (1970...9999).contains(y), (1...12).contains(m), (1...31).contains(d) else { return nil }
        // A day the calendar has (not February 30).
        var utc = Calendar(identifier: .gregorian)
        utc.timeZone = TimeZone(identifier: "UTC")!
        guard let real = utc.date(from: DateComponents(year: y, month: m, day: d)),
              utc.component(.day, from: real) == d, utc.component(.month, from: real) == m else { return nil }
        let months = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"]
        return "\(months[m - 1]) \(d), \(y)"
    }

    /// Reproducible builds: the day of $SOURCE_DATE_EPOCH when set.
    static func defaultDay() -> String {
        let epoch = ProcessInfo.processInfo.environment["SOURCE_DATE_EPOCH"].flatMap(Double.init).flatMap { $0.isFinite && $0 >= 0 && $0 < 253_402_300_800 ? $0 : nil }
        let date = epoch.map { Date(timeIntervalSince1970: $0) } ?? Date()
        return String(Timestamps.iso8601(date).prefix(10))
    }
}
