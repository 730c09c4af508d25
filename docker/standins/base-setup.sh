#!/bin/sh
# Turns a fresh `debootstrap --variant=minbase SUITE ROOTFS` tree into the root file system of a base
# image, the way Debian's official images (debuerreotype, the -slim variants) are set up:
#
#   docker/standins/base-setup.sh ROOTFS SUITE
#
# Run by docker/standins/build before `docker import`; part of every stand-in's recipe hash.
set -eu
rootfs=$1
suite=$2

# apt sources: the suite, plus its updates and security suites where Debian has them (not for sid).
case $suite in
  sid) printf 'deb http://deb.debian.org/debian sid main\n' ;;
  *) printf 'deb http://deb.debian.org/debian %s main\n' "$suite" "$suite-updates"
     printf 'deb http://deb.debian.org/debian-security %s-security main\n' "$suite" ;;
esac >"$rootfs/etc/apt/sources.list"

# Services must not start while packages are installed during `docker build` (nginx's postinst would).
printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
chmod 0755 "$rootfs/usr/sbin/policy-rc.d"

# No package caches or translations in the image; dpkg skips unsafe fsyncs (a container build).
cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'CONF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CONF
printf 'Acquire::Languages "none";\n' >"$rootfs/etc/apt/apt.conf.d/docker-no-languages"
printf 'force-unsafe-io\n' >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"

# -slim: no documentation, manuals or translations, neither now nor from later installs.
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'CONF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
CONF
find "$rootfs/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
rm -rf "$rootfs/usr/share/groff" "$rootfs/usr/share/info" "$rootfs/usr/share/linda" \
       "$rootfs/usr/share/lintian/overrides" "$rootfs/usr/share/locale"/* "$rootfs/usr/share/man"/*

# Leftovers of the bootstrap: downloaded packages, logs, and the host's name and resolver (Docker
# provides its own at run time).
rm -rf "$rootfs/var/cache/apt/archives"/*.deb "$rootfs/var/lib/apt/lists"/* "$rootfs/var/log"/*.log \
       "$rootfs/var/log/apt"/*
: >"$rootfs/etc/resolv.conf"
: >"$rootfs/etc/hostname"
