//! The command line, as runc and crun accept it (callers pass runc's flags).
//! Definitions only; `main.rs` dispatches.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// hutch: an OCI container runtime any user can run without privileges.
#[derive(Debug, Parser)]
#[command(name = "hutch", version, about, long_about = None, disable_version_flag = true)]
pub struct Cli {
    /// Print the version, the commit, and the runtime-spec and libseccomp versions
    #[arg(short = 'v', short_alias = 'V', long, action = clap::ArgAction::Version)]
    pub version: Option<bool>,

    /// State directory [default: /run/hutch for root, $XDG_RUNTIME_DIR/hutch otherwise]
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,

    /// Also write log messages (and errors) to FILE
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,

    /// Format of the log: text, or json (runc's one-object-per-line format)
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log debug messages
    #[arg(long)]
    pub debug: bool,

    /// The container's cgroup is a transient systemd scope (cgroupsPath slice:prefix:name), asked for on the system bus (root) or the session bus (a plain user)
    #[arg(long)]
    pub systemd_cgroup: bool,

    /// Accepted for compatibility (true, false or auto); hutch goes by what the caller may do
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub rootless: Option<String>,

    /// As crun: `disabled` makes and joins no cgroup, `systemd` is --systemd-cgroup, `cgroupfs` (the default) makes the directories itself, in cgroup v1 and v2
    #[arg(long, value_name = "MANAGER")]
    pub cgroup_manager: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

/// `--log-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The shells `hutch completion` writes a script for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// Flags of `create` and `run`.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// The bundle directory (holding config.json)
    #[arg(short = 'b', long, value_name = "DIR", default_value = ".")]
    pub bundle: PathBuf,

    /// Write the container process's pid to FILE
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,

    /// Send the pty master of a terminal container to this AF_UNIX socket
    #[arg(long, value_name = "PATH")]
    pub console_socket: Option<PathBuf>,

    /// Keep the caller's session keyring (by default the container gets a new one, named after its id)
    #[arg(long)]
    pub no_new_keyring: bool,

    /// Use chroot instead of pivot_root (only where pivot_root cannot work)
    #[arg(long)]
    pub no_pivot: bool,

    /// Pass N more file descriptors (3 to 3+N-1) to the program
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub preserve_fds: u32,

    /// The container id
    pub id: String,
}

/// Flags of `update`, as runc's: sizes take a unit (64m, 1g); a value of
/// 0 leaves the limit as it is.
#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    /// A runtime-spec LinuxResources JSON file (`-`: standard input); the
    /// other flags are then ignored, as by runc
    #[arg(short, long, value_name = "FILE")]
    pub resources: Option<PathBuf>,
    /// Block I/O weight (10 to 1000)
    #[arg(long, value_name = "N")]
    pub blkio_weight: Option<u16>,
    /// CFS period (microseconds)
    #[arg(long, value_name = "US")]
    pub cpu_period: Option<u64>,
    /// CFS quota (microseconds per period; -1: none)
    #[arg(long, value_name = "US", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// CPU shares (relative weight)
    #[arg(long, alias = "cpu-shares", value_name = "N")]
    pub cpu_share: Option<u64>,
    /// Real-time period (microseconds)
    #[arg(long, value_name = "US")]
    pub cpu_rt_period: Option<u64>,
    /// Real-time runtime (microseconds per period)
    #[arg(long, value_name = "US", allow_hyphen_values = true)]
    pub cpu_rt_runtime: Option<i64>,
    /// CPUs to run on (0-3, 0,1)
    #[arg(long, value_name = "LIST")]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes to use (0-3, 0,1)
    #[arg(long, value_name = "LIST")]
    pub cpuset_mems: Option<String>,
    /// Memory limit
    #[arg(long, value_name = "SIZE")]
    pub memory: Option<String>,
    /// Memory reservation (soft limit)
    #[arg(long, value_name = "SIZE")]
    pub memory_reservation: Option<String>,
    /// Memory plus swap limit (-1: unlimited swap)
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Kernel memory limit (cgroup v1; refused by recent kernels)
    #[arg(long, value_name = "SIZE")]
    pub kernel_memory: Option<String>,
    /// Kernel TCP buffer limit (cgroup v1)
    #[arg(long, value_name = "SIZE")]
    pub kernel_memory_tcp: Option<String>,
    /// Maximum number of processes (-1: none)
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Intel RDT L3 cache schema (not supported by hutch)
    #[arg(long, value_name = "SCHEMA")]
    pub l3_cache_schema: Option<String>,
    /// Intel RDT memory bandwidth schema (not supported by hutch)
    #[arg(long, value_name = "SCHEMA")]
    pub mem_bw_schema: Option<String>,
    /// The container id
    pub id: String,
}

/// The operations.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a container whose process waits for `start`
    Create(CreateArgs),
    /// Run the program of a created container
    Start {
        /// The container id
        id: String,
    },
    /// Print the OCI state of a container as JSON
    State {
        /// The container id
        id: String,
    },
    /// Send a signal to a container's process (default TERM)
    Kill {
        /// Signal every process of the container
        #[arg(short, long)]
        all: bool,
        /// The container id
        id: String,
        /// Name (KILL, SIGKILL) or number
        #[arg(default_value = "TERM")]
        signal: String,
    },
    /// Delete a stopped container
    Delete {
        /// Kill the container first if it is created or running; succeed if
        /// it does not exist
        #[arg(short, long)]
        force: bool,
        /// The container id
        id: String,
    },
    /// Create and start a container, wait for it, and exit with its status
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// Return once the program runs, without waiting
        #[arg(short, long)]
        detach: bool,
        /// Keep the container's state after it exits
        #[arg(long)]
        keep: bool,
    },
    /// Run another program in a running container
    Exec {
        /// A JSON process object (as in config.json) to run instead of COMMAND
        #[arg(short, long, value_name = "FILE")]
        process: Option<PathBuf>,
        /// Run with a terminal (needs --console-socket)
        #[arg(short, long)]
        tty: bool,
        /// Send the pty master to this AF_UNIX socket
        #[arg(long, value_name = "PATH")]
        console_socket: Option<PathBuf>,
        /// Working directory in the container
        #[arg(long, value_name = "DIR")]
        cwd: Option<PathBuf>,
        /// Add NAME=value to the environment
        #[arg(short, long, value_name = "NAME=VALUE")]
        env: Vec<String>,
        /// Run as UID[:GID]
        #[arg(short, long, value_name = "UID[:GID]")]
        user: Option<String>,
        /// Additional group
        #[arg(short = 'g', long, value_name = "GID")]
        additional_gids: Vec<u32>,
        /// Add a capability
        #[arg(short, long, value_name = "CAP")]
        cap: Vec<String>,
        /// Set no_new_privs
        #[arg(long)]
        no_new_privs: bool,
        /// Return once the program runs
        #[arg(short, long)]
        detach: bool,
        /// Write the new process's pid to FILE
        #[arg(long, value_name = "FILE")]
        pid_file: Option<PathBuf>,
        /// Pass N more file descriptors (3 to 3+N-1)
        #[arg(long, value_name = "N", default_value_t = 0)]
        preserve_fds: u32,
        /// Accepted for compatibility; SELinux labels are not applied
        #[arg(long, value_name = "LABEL")]
        process_label: Option<String>,
        /// Accepted for compatibility; AppArmor profiles are not applied
        #[arg(long, value_name = "PROFILE")]
        apparmor: Option<String>,
        /// The container id
        id: String,
        /// The program and its arguments
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// List the processes of a container: `ps` (ARGS, default -ef) filtered
    /// to them, or (json) their pids
    Ps {
        /// table or json
        #[arg(short, long, default_value = "table")]
        format: String,
        /// The container id
        id: String,
        /// Arguments for ps(1) with the table format
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "PS ARGS"
        )]
        ps_args: Vec<String>,
    },
    /// Suspend every process of the container (its cgroup's freezer)
    Pause {
        /// The container id
        id: String,
    },
    /// Resume the processes of a paused container
    Resume {
        /// The container id
        id: String,
    },
    /// Change the resource limits of a container
    Update(UpdateArgs),
    /// Print the container's resource usage (and OOM kills) as JSON lines
    Events {
        /// How often to print the statistics (as 5s, 500ms, 1m)
        #[arg(long, value_name = "DURATION", default_value = "5s")]
        interval: String,
        /// Print the statistics once and exit
        #[arg(long)]
        stats: bool,
        /// The container id
        id: String,
    },
    /// Write a default config.json for a root file system in ./rootfs
    Spec {
        /// A config a plain user can run: user namespace, host network, /sys bound
        #[arg(long)]
        rootless: bool,
        /// Where to write config.json
        #[arg(short = 'b', long, value_name = "DIR", default_value = ".")]
        bundle: PathBuf,
        /// The program and its arguments (default: sh)
        #[arg(long, num_args = 1.., allow_hyphen_values = true, value_name = "ARG")]
        args: Vec<String>,
    },
    /// Print what this runtime supports, as the runtime-spec features JSON
    Features,
    /// Print the manual page, hutch(1) (read it with `hutch man | man -l -`)
    Man,
    /// Print the shell completion script for bash, zsh or fish
    Completion {
        #[arg(value_enum)]
        shell: Shell,
    },
    /// List the containers
    List {
        /// table or json
        #[arg(short, long, default_value = "table")]
        format: String,
        /// Print only the ids
        #[arg(short, long)]
        quiet: bool,
    },
}
