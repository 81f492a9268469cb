//! The `hutch` binary: parse the command line, set up logging, run one
//! operation, and turn its result into an exit status and one line on
//! stderr.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use hutch::chrunoci::{self, Front};
use hutch::cli::{Cli, Command, CreateArgs, Shell};
use hutch::container::{self, CreateOptions, Globals};
use hutch::control;
use hutch::error::{Error, Result};
use hutch::spec::Host;

fn main() -> ExitCode {
    let version = version();
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let called_as = args.clone();
    // Installed or linked as ch-run-oci: its command line (chrunoci.rs).
    let (mut verbosity, mut hang) = (0, None);
    if args.first().is_some_and(|a| chrunoci::called_as(a)) {
        match chrunoci::translate(
            &args[1..],
            std::env::var_os("CH_LOG_FILE"),
            std::env::var_os("CH_RUN_OCI_HANG"),
        ) {
            Front::Usage => {
                eprint!("{}", chrunoci::USAGE);
                return ExitCode::from(1);
            }
            Front::Version => {
                println!("ch-run-oci: hutch {version}");
                return ExitCode::SUCCESS;
            }
            Front::Run {
                args: translated,
                verbosity: v,
                log_file,
                hang: h,
            } => {
                args = translated;
                if let Some(f) = log_file.filter(|_| !args.iter().any(|a| a == "--log")) {
                    args.splice(1..1, [std::ffi::OsString::from("--log"), f]);
                }
                (verbosity, hang) = (v, h);
            }
        }
    }
    let matches = Cli::command()
        .version(version.clone())
        .long_version(version)
        .get_matches_from(&args);
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    if cli.debug {
        verbosity = verbosity.max(2);
    }
    let logging = hutch::log::init(cli.log.as_deref(), cli.log_format, verbosity);
    tracing::info!("called as {called_as:?}");
    if let Some(op) = hang {
        chrunoci::hang(&op);
    }
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            if logging.to_file {
                tracing::error!("{e}");
            }
            eprintln!("hutch: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// What `--version` prints, as runc and crun do: this version, the commit
/// it was built from, the runtime-spec version it implements and the
/// libseccomp linked in. (clap puts the name first: "hutch version …".)
fn version() -> String {
    let seccomp = libseccomp::ScmpVersion::current()
        .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
        .unwrap_or_else(|_| "unknown".into());
    format!(
        "version {}\ncommit: {}\nspec: {}\nlibseccomp: {}",
        env!("CARGO_PKG_VERSION"),
        env!("HUTCH_COMMIT"),
        hutch::features::OCI_VERSION_MAX,
        seccomp
    )
}

fn run(cli: Cli) -> Result<u8> {
    let host = Host::current();
    let g = Globals {
        root: cli
            .root
            .clone()
            .unwrap_or_else(|| hutch::state::default_root(host)),
        host,
        // podman's --cgroups=disabled: no cgroup, whatever the config says.
        cgroups_disabled: cli.cgroup_manager.as_deref() == Some("disabled"),
        systemd_cgroup: cli.systemd_cgroup || cli.cgroup_manager.as_deref() == Some("systemd"),
    };
    match cli.command {
        Command::Create(args) => {
            let (id, opts) = create_options(args);
            container::create(&g, &id, &opts)?;
        }
        Command::Start { id } => container::start(&g, &id)?,
        Command::State { id } => {
            let doc = container::state(&g, &id)?;
            println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        }
        Command::Kill { all, id, signal } => {
            let sig = hutch::signal::parse(&signal)?;
            container::kill(&g, &id, sig, all)?;
        }
        Command::Delete { force, id } => container::delete(&g, &id, force)?,
        Command::Run {
            create,
            detach,
            keep,
        } => {
            let (id, mut opts) = create_options(create);
            opts.die_with_parent = !detach;
            let code = container::run(&g, &id, &opts, detach, keep)?;
            return Ok(u8::try_from(code).unwrap_or(255));
        }
        Command::List { format, quiet } => list(&g, &format, quiet)?,
        Command::Spec {
            rootless,
            bundle,
            args,
        } => write_spec(&bundle, rootless, &args, host)?,
        Command::Exec {
            process,
            tty,
            console_socket,
            cwd,
            env,
            user,
            additional_gids,
            cap,
            no_new_privs,
            detach,
            pid_file,
            preserve_fds,
            process_label: _,
            apparmor: _,
            id,
            command,
        } => {
            let opts = hutch::exec::ExecOptions {
                process,
                args: command,
                env,
                cwd,
                user,
                additional_gids,
                tty,
                console_socket,
                caps: cap,
                no_new_privs,
                detach,
                pid_file,
                preserve_fds,
            };
            let code = hutch::exec::exec(&g, &id, &opts)?;
            return Ok(u8::try_from(code).unwrap_or(255));
        }
        Command::Ps {
            format,
            id,
            ps_args,
        } => ps(&g, &id, &format, &ps_args)?,
        Command::Pause { id } => control::pause(&g, &id)?,
        Command::Resume { id } => control::resume(&g, &id)?,
        Command::Update(args) => {
            let resources = control::update_resources(&args)?;
            control::update(&g, &args.id, &resources)?;
        }
        Command::Events {
            interval,
            stats,
            id,
        } => control::events(&g, &id, control::parse_duration(&interval)?, stats)?,
        Command::Man => print!("{}", include_str!(concat!(env!("OUT_DIR"), "/hutch.1"))),
        Command::Completion { shell } => print!(
            "{}",
            match shell {
                Shell::Bash => include_str!(concat!(env!("OUT_DIR"), "/hutch.bash")),
                Shell::Zsh => include_str!(concat!(env!("OUT_DIR"), "/_hutch")),
                Shell::Fish => include_str!(concat!(env!("OUT_DIR"), "/hutch.fish")),
            }
        ),
        Command::Features => println!(
            "{}",
            serde_json::to_string_pretty(&hutch::features::document()).unwrap_or_default()
        ),
    }
    Ok(0)
}

fn ps(g: &Globals, id: &str, format: &str, args: &[String]) -> Result<()> {
    let pids = control::processes(g, id)?;
    match format {
        "json" => println!(
            "{}",
            serde_json::json!(pids.iter().map(|p| p.as_raw()).collect::<Vec<_>>())
        ),
        "table" => print!("{}", control::ps_table(&pids, args)?),
        other => {
            return Err(Error::Usage(format!(
                "unknown ps format `{other}` (table or json)"
            )))
        }
    }
    Ok(())
}

fn write_spec(bundle: &std::path::Path, rootless: bool, args: &[String], host: Host) -> Result<()> {
    let path = bundle.join("config.json");
    let doc = hutch::specgen::default_config(rootless, args, host.euid, host.egid);
    let text = serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n";
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => {
                Error::Usage(format!("`{}` exists; remove it first", path.display()))
            }
            _ => Error::io("write", &path, e),
        })?;
    std::io::Write::write_all(&mut f, text.as_bytes()).map_err(|e| Error::io("write", &path, e))
}

fn create_options(a: CreateArgs) -> (String, CreateOptions) {
    let opts = CreateOptions {
        bundle: a.bundle,
        pid_file: a.pid_file,
        console_socket: a.console_socket,
        no_pivot: a.no_pivot,
        preserve_fds: a.preserve_fds,
        no_new_keyring: a.no_new_keyring,
        die_with_parent: false,
    };
    (a.id, opts)
}

fn list(g: &Globals, format: &str, quiet: bool) -> Result<()> {
    let all = container::list(g)?;
    if quiet {
        for c in &all {
            println!("{}", c.record.id);
        }
        return Ok(());
    }
    match format {
        "json" => {
            let docs: Vec<_> = all.iter().map(|c| c.record.oci_state(c.status)).collect();
            println!("{}", serde_json::Value::Array(docs));
        }
        "table" => {
            println!("{:<24} {:>8} {:<8} BUNDLE", "ID", "PID", "STATUS");
            for c in &all {
                let pid = if c.status == hutch::state::Status::Stopped {
                    0
                } else {
                    c.record.pid.as_raw()
                };
                println!(
                    "{:<24} {:>8} {:<8} {}",
                    c.record.id,
                    pid,
                    c.status.as_str(),
                    c.record.bundle.display()
                );
            }
        }
        other => {
            return Err(Error::Usage(format!(
                "unknown list format `{other}` (table or json)"
            )))
        }
    }
    Ok(())
}
