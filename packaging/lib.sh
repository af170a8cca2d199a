# shellcheck shell=bash
# Shared by packaging/build-ipk.sh and packaging/build-deb.sh (sourced, not run).

PKG_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

die() {
	echo "${0##*/}: $*" >&2
	exit 1
}

# The version of the tunbox package: `version` of [package] in Cargo.toml.
cargo_version() {
	local v
	v="$(awk '
		/^\[/ { in_pkg = ($0 == "[package]") }
		in_pkg && /^version[[:space:]]*=/ {
			sub(/^version[[:space:]]*=[[:space:]]*"/, ""); sub(/".*$/, ""); print; exit
		}' "$PKG_ROOT/Cargo.toml")"
	[ -n "$v" ] || die "no version in [package] of $PKG_ROOT/Cargo.toml"
	printf '%s\n' "$v"
}

# targets/targets.tsv (the cross-build table): PKG_TARGETS_TSV overrides.
targets_tsv() {
	printf '%s\n' "${PKG_TARGETS_TSV:-$PKG_ROOT/targets/targets.tsv}"
}

# target_field TRIPLE FIELD: one column of the row for TRIPLE ("-" prints as
# empty), read by the column names in the table's "#rust_target" header line.
target_field() {
	local tsv triple="$1" field="$2"
	tsv="$(targets_tsv)"
	[ -f "$tsv" ] || die "$tsv not found: pass the architecture explicitly (--arch) or set PKG_TARGETS_TSV"
	awk -F'\t' -v t="$triple" -v f="$field" '
		/^#rust_target/ { sub(/^#/, ""); for (i = 1; i <= NF; i++) col[$i] = i; next }
		/^#/ || /^[[:space:]]*$/ { next }
		$1 == t {
			if (!(f in col)) { print "no column " f > "/dev/stderr"; exit 3 }
			v = $(col[f]); if (v == "-") v = ""; print v; found = 1; exit
		}
		END { if (!found) exit 2 }' "$tsv" || {
		case $? in
		2) die "target $triple is not in $tsv" ;;
		*) die "cannot read column $field of $tsv" ;;
		esac
	}
}

# What `file` says about the ELF machine of each Rust target's binaries.
elf_pattern() {
	case "$1" in
	aarch64-*) echo 'ELF 64-bit LSB .*ARM aarch64' ;;
	armv7-* | arm-* | armv5te-* | thumbv7*) echo 'ELF 32-bit LSB .*ARM, EABI5' ;;
	mipsel-*) echo 'ELF 32-bit LSB .*MIPS' ;;
	mips-*) echo 'ELF 32-bit MSB .*MIPS' ;;
	mips64el-*) echo 'ELF 64-bit LSB .*MIPS' ;;
	mips64-*) echo 'ELF 64-bit MSB .*MIPS' ;;
	x86_64-*) echo 'ELF 64-bit LSB .*x86-64' ;;
	i686-* | i586-*) echo 'ELF 32-bit LSB .*Intel 80386' ;;
	riscv64*) echo 'ELF 64-bit LSB .*RISC-V' ;;
	*) return 1 ;;
	esac
}

# check_binary PATH TRIPLE ALLOW_DYNAMIC: refuse a binary for another machine,
# and (unless ALLOW_DYNAMIC=1) one that is not statically linked: routers and
# Pis get a single static musl binary with no libc to depend on.
check_binary() {
	local bin="$1" triple="$2" allow_dynamic="$3" desc pat
	[ -f "$bin" ] || die "binary $bin not found"
	command -v file >/dev/null || die "the 'file' command is needed (apt-get install file)"
	desc="$(file -b "$bin")"
	pat="$(elf_pattern "$triple")" || die "unknown target triple $triple"
	printf '%s\n' "$desc" | grep -Eq "$pat" ||
		die "$bin is not a $triple binary: $desc"
	if [ "$allow_dynamic" != 1 ]; then
		printf '%s\n' "$desc" | grep -Eq 'statically linked|static-pie linked' ||
			die "$bin is not statically linked ($desc); build it with targets/build.sh $triple"
	fi
}

# Reproducible timestamps: SOURCE_DATE_EPOCH, else the last commit, else now.
source_date_epoch() {
	if [ -n "${SOURCE_DATE_EPOCH:-}" ]; then
		echo "$SOURCE_DATE_EPOCH"
	elif git -C "$PKG_ROOT" log -1 --format=%ct >/dev/null 2>&1; then
		git -C "$PKG_ROOT" log -1 --format=%ct
	else
		date +%s
	fi
}

# deterministic tar of DIR's contents (as ./...), owned by root, to stdout
tar_dir() {
	local dir="$1" mtime="$2"
	(cd "$dir" && tar --format=gnu --numeric-owner --owner=0 --group=0 --sort=name \
		--mtime="@$mtime" -cf - .)
}
