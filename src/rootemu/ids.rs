//! The identity a process believes it has under root emulation, and the
//! kernel's rules for changing it (credentials(7)), applied to that belief
//! instead of the real credentials. Pure: no system call here.
//!
//! "Privileged" is what the kernel checks with CAP_SETUID / CAP_SETGID: the
//! believed effective uid is root *and* the process really holds the
//! capability (a program that dropped it still gets the kernel's EPERM).

/// `(uid_t)-1`: "leave this one unchanged" in the set*id calls.
pub const UNCHANGED: u32 = u32::MAX;

/// The kernel's NGROUPS_MAX.
pub const NGROUPS_MAX: usize = 65536;

/// Real, effective, saved and filesystem ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Four {
    pub real: u32,
    pub effective: u32,
    pub saved: u32,
    pub fs: u32,
}

impl Four {
    pub fn all(id: u32) -> Four {
        Four {
            real: id,
            effective: id,
            saved: id,
            fs: id,
        }
    }

    fn is_one_of_rsf(&self, id: u32) -> bool {
        id == self.real || id == self.effective || id == self.saved
    }
}

/// What a process believes its credentials are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ids {
    pub uid: Four,
    pub gid: Four,
    /// `None` until the process (or an ancestor) emulates a `setgroups`:
    /// `getgroups` then answers with the real list.
    pub groups: Option<Vec<u32>>,
}

/// Which of the two families a call belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    User,
    Group,
}

/// A set*id call, with its arguments as the kernel reads them (32 bits).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SetId {
    /// `setuid` / `setgid`.
    Set(Kind, u32),
    /// `setreuid` / `setregid`.
    SetRe(Kind, u32, u32),
    /// `setresuid` / `setresgid`.
    SetRes(Kind, u32, u32, u32),
    /// `setfsuid` / `setfsgid`: returns the old fs id, never fails.
    SetFs(Kind, u32),
    /// `setgroups` with its list.
    Groups(Vec<u32>),
}

/// What the call returns: a value or an errno.
pub type Outcome = std::result::Result<i64, i32>;

impl Ids {
    /// The ids of one family.
    fn four(&mut self, k: Kind) -> &mut Four {
        match k {
            Kind::User => &mut self.uid,
            Kind::Group => &mut self.gid,
        }
    }

    /// Apply `call` as the kernel would to these ids. `cap_setuid` and
    /// `cap_setgid`: the process really holds the capability.
    pub fn apply(&mut self, call: &SetId, cap_setuid: bool, cap_setgid: bool) -> Outcome {
        let root = self.uid.effective == 0;
        let privileged = |k: Kind| {
            root && match k {
                Kind::User => cap_setuid,
                Kind::Group => cap_setgid,
            }
        };
        match *call {
            SetId::Set(k, id) => {
                if id == UNCHANGED {
                    return Err(libc::EINVAL);
                }
                let p = privileged(k);
                let f = self.four(k);
                if p {
                    *f = Four::all(id);
                } else if id == f.real || id == f.saved {
                    f.effective = id;
                    f.fs = id;
                } else {
                    return Err(libc::EPERM);
                }
                Ok(0)
            }
            SetId::SetRe(k, r, e) => {
                let p = privileged(k);
                let f = self.four(k);
                let old = *f;
                if !p {
                    let r_ok = r == UNCHANGED || r == old.real || r == old.effective;
                    let e_ok = e == UNCHANGED || old.is_one_of_rsf(e);
                    if !(r_ok && e_ok) {
                        return Err(libc::EPERM);
                    }
                }
                if r != UNCHANGED {
                    f.real = r;
                }
                if e != UNCHANGED {
                    f.effective = e;
                }
                if r != UNCHANGED || (e != UNCHANGED && e != old.real) {
                    f.saved = f.effective;
                }
                f.fs = f.effective;
                Ok(0)
            }
            SetId::SetRes(k, r, e, s) => {
                let p = privileged(k);
                let f = self.four(k);
                if !p {
                    let ok = |id: u32| id == UNCHANGED || f.is_one_of_rsf(id);
                    if !(ok(r) && ok(e) && ok(s)) {
                        return Err(libc::EPERM);
                    }
                }
                if r != UNCHANGED {
                    f.real = r;
                }
                if e != UNCHANGED {
                    f.effective = e;
                }
                if s != UNCHANGED {
                    f.saved = s;
                }
                f.fs = f.effective;
                Ok(0)
            }
            SetId::SetFs(k, id) => {
                let p = privileged(k);
                let f = self.four(k);
                let old = f.fs;
                if id != UNCHANGED && (p || f.is_one_of_rsf(id) || id == f.fs) {
                    f.fs = id;
                }
                Ok(i64::from(old))
            }
            SetId::Groups(ref list) => {
                if list.len() > NGROUPS_MAX {
                    return Err(libc::EINVAL);
                }
                if !privileged(Kind::Group) {
                    return Err(libc::EPERM);
                }
                let mut list = list.clone();
                list.sort_unstable();
                self.groups = Some(list);
                Ok(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> Ids {
        Ids {
            uid: Four::all(0),
            gid: Four::all(0),
            groups: None,
        }
    }

    #[test]
    fn apt_drops_to_its_sandbox_user_and_cannot_come_back() {
        // apt's DropPrivileges: setgroups, setresgid, setresuid, then it
        // checks getgid/getegid/getuid/geteuid.
        let mut ids = root();
        assert_eq!(ids.apply(&SetId::Groups(vec![65534]), true, true), Ok(0));
        assert_eq!(
            ids.apply(&SetId::SetRes(Kind::Group, 65534, 65534, 65534), true, true),
            Ok(0)
        );
        assert_eq!(
            ids.apply(&SetId::SetRes(Kind::User, 42, 42, 42), true, true),
            Ok(0)
        );
        assert_eq!(ids.uid, Four::all(42));
        assert_eq!(ids.gid, Four::all(65534));
        assert_eq!(ids.groups, Some(vec![65534]));
        // No longer root: the way back is refused, as the kernel would.
        assert_eq!(
            ids.apply(&SetId::Set(Kind::User, 0), true, true),
            Err(libc::EPERM)
        );
        assert_eq!(
            ids.apply(&SetId::Groups(vec![0]), true, true),
            Err(libc::EPERM)
        );
    }

    #[test]
    fn seteuid_and_back_keeps_the_saved_root() {
        // apt's check before downloads: seteuid(42), then seteuid(0).
        let mut ids = root();
        assert_eq!(
            ids.apply(
                &SetId::SetRes(Kind::User, UNCHANGED, 42, UNCHANGED),
                true,
                true
            ),
            Ok(0)
        );
        assert_eq!((ids.uid.real, ids.uid.effective, ids.uid.saved), (0, 42, 0));
        assert_eq!(
            ids.apply(
                &SetId::SetRes(Kind::User, UNCHANGED, 0, UNCHANGED),
                true,
                true
            ),
            Ok(0)
        );
        assert_eq!(ids.uid, Four::all(0));
    }

    #[test]
    fn setreuid_sets_saved_as_the_kernel_does() {
        let mut ids = root();
        assert_eq!(
            ids.apply(&SetId::SetRe(Kind::User, 1000, 1000), true, true),
            Ok(0)
        );
        assert_eq!(ids.uid, Four::all(1000));
        // Unprivileged: may swap among its own ids only.
        assert_eq!(
            ids.apply(&SetId::SetRe(Kind::User, 5, UNCHANGED), true, true),
            Err(libc::EPERM)
        );
    }

    #[test]
    fn without_the_capability_root_is_refused() {
        let mut ids = root();
        assert_eq!(
            ids.apply(&SetId::Set(Kind::User, 1000), false, true),
            Err(libc::EPERM)
        );
        assert_eq!(
            ids.apply(&SetId::Groups(vec![]), true, false),
            Err(libc::EPERM)
        );
        assert_eq!(ids, root());
    }

    #[test]
    fn bad_arguments_keep_their_errors() {
        let mut ids = root();
        assert_eq!(
            ids.apply(&SetId::Set(Kind::User, UNCHANGED), true, true),
            Err(libc::EINVAL)
        );
        assert_eq!(
            ids.apply(&SetId::Groups(vec![0; NGROUPS_MAX + 1]), true, true),
            Err(libc::EINVAL)
        );
    }

    #[test]
    fn setfsuid_returns_the_old_value() {
        let mut ids = root();
        assert_eq!(ids.apply(&SetId::SetFs(Kind::User, 7), true, true), Ok(0));
        assert_eq!(
            ids.apply(&SetId::SetFs(Kind::User, UNCHANGED), true, true),
            Ok(7)
        );
        assert_eq!(ids.uid.fs, 7);
    }
}
