// Package secretfile reads the files that hold lockstepd's secrets: the
// storage systems' password files, the SNMP community and USM key files,
// and the private key of the HA link's TLS certificate (docs/architecture.md (Trust):
// "password and key files refused when readable by others"). Every place
// the daemon reads a secret goes through Read; Check is the same test
// without keeping the bytes, for a path given to the admin API before it
// is journaled.
//
// # The rules
//
// A secret file is refused, with an error naming the file, its owner,
// group and mode and what to run, unless:
//
//   - it is a regular file (a symbolic link to one is followed; a FIFO or
//     a device is refused, and is opened without blocking to find out);
//   - nobody outside its owner and group can read or write it (mode &
//     0o006 == 0): others reading it is the leak; others writing it would
//     let them swap a key or a password for their own;
//   - if its group may read or write it (mode & 0o060), that group is one
//     of this process's groups (its effective gid or a supplementary one).
//     Under the shipped unit that is group lockstep, so root:lockstep 0640
//     is the usual layout. A file open to any other group hands the
//     secret to people the daemon shares nothing with;
//   - its owner is root or this process's effective user: any other owner
//     could chmod it open at any moment (sshd's StrictModes rule);
//   - this process can read it, and it holds at most MaxSize bytes.
//
// The rules depend on who reads (the groups, the user), so they are
// applied by the daemon as it reads, not by `lockstepd --check-config`,
// which an administrator may run as another user.
//
// The content of a secret is never part of an error or a log line.
package secretfile
