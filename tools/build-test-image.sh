#!/usr/bin/env bash
# Build the offline test image: Debian 12 with systemd as PID 1, an SSH daemon,
# python3 and a passwordless-sudo "ubuntu" login user, so it looks to Ansible
# like a fresh Ubuntu EC2 instance. Nothing of the app stack is installed.
#
#   tools/build-test-image.sh [IMAGE]     (default localhost/ec2-fleet-host:bookworm)
#
# The image is built from Debian's archive with debootstrap and imported with
# `podman import`; no container registry is needed. An existing tag is reused
# while it was built by this very script (its label ec2-fleet.recipe holds the script's
# hash), so a changed recipe rebuilds on the next `make image`; FORCE=1 always rebuilds.
set -euo pipefail

IMAGE="${1:-${EC2_FLEET_TEST_IMAGE:-localhost/ec2-fleet-host:bookworm}}"
HERE="$(cd "$(dirname "$0")" && pwd)"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$HERE/containers.conf}"
RECIPE="$(sha256sum "$0" | cut -c1-16)"

if [[ "${FORCE:-0}" != 1 ]] && podman image exists "$IMAGE"; then
  built="$(podman image inspect --format '{{ index .Labels "ec2-fleet.recipe" }}' "$IMAGE" 2>/dev/null || true)"
  if [[ "$built" == "$RECIPE" ]]; then
    echo "test image $IMAGE exists (recipe $RECIPE); reusing it (FORCE=1 rebuilds)"
    exit 0
  fi
  echo "test image $IMAGE was built by another recipe (${built:-none}, now $RECIPE): rebuilding"
fi

# The mirror apt already uses on this machine (deb822 or one-line sources).
mirror() {
  local uri
  uri="$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list 2>/dev/null \
        | grep -v security | sed -E 's/^URIs:[[:space:]]*//; s/^deb (\[[^]]*\] )?//; s/[[:space:]].*$//' | head -n1)"
  echo "${uri:-http://deb.debian.org/debian}"
}
MIRROR="${DEBIAN_MIRROR:-$(mirror)}"

ROOTFS="$(mktemp -d /var/tmp/ec2-fleet-rootfs.XXXXXX)"
trap 'rm -rf "$ROOTFS"' EXIT

echo "debootstrap bookworm from $MIRROR into $ROOTFS"
debootstrap --variant=minbase \
  --include=systemd,systemd-sysv,python3,python3-apt,sudo,dbus,iproute2,ca-certificates,openssh-server,gnupg,locales \
  bookworm "$ROOTFS" "$MIRROR" >/dev/null

# A busy first boot, as on a new Ubuntu AMI where apt-daily / unattended-upgrades still run when
# the first play arrives: at boot this unit takes apt's and dpkg's locks the way apt takes them
# (fcntl record locks; flock(1) would not conflict with apt) and keeps them until another process
# has tried to open one of them (seen through inotify: the first package task) and then for
# EC2_FLEET_LAB_BUSY_BOOT_SECONDS more, read from the container's environment (PID 1's); never
# longer than 15 minutes from boot. Holding "until the first play tried" rather than "for N s from
# boot" makes the play meet the busy boot however long the launch took. Absent or 0 = idle, so only
# the lab, which sets it on its instances, gets a busy boot; molecule and pytest hosts do not.
install -d "$ROOTFS/usr/local/sbin"
cat > "$ROOTFS/usr/local/sbin/ec2-fleet-busy-boot" <<'BUSY'
#!/usr/bin/python3
"""Hold apt's and dpkg's locks until another process tried them, then EC2_FLEET_LAB_BUSY_BOOT_SECONDS more."""
import ctypes
import fcntl
import os
import select
import struct
import time

LOCKS = ["/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock", "/var/lib/apt/lists/lock", "/var/cache/apt/archives/lock"]
NAME = b"EC2_FLEET_LAB_BUSY_BOOT_SECONDS="
IN_OPEN = 0x20
CAP_SECONDS = 900

try:
    environ = open("/proc/1/environ", "rb").read().split(b"\0")
except OSError:
    environ = []
raw = next((item[len(NAME):] for item in environ if item.startswith(NAME)), b"0")
try:
    seconds = max(0.0, float(raw))
except ValueError:
    seconds = 0.0
if seconds == 0:
    print("idle boot: EC2_FLEET_LAB_BUSY_BOOT_SECONDS is 0 or not set", flush=True)
    raise SystemExit(0)
held = []
for path in LOCKS:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o640)
    fcntl.lockf(fd, fcntl.LOCK_EX)  # F_SETLKW with F_WRLCK, as apt's and dpkg's own locks
    held.append(fd)
libc = ctypes.CDLL(None, use_errno=True)
watch = libc.inotify_init1(os.O_CLOEXEC)
for path in LOCKS:
    libc.inotify_add_watch(watch, path.encode(), IN_OPEN)
cap = time.time() + CAP_SECONDS
print(f"holding apt and dpkg locks until a package task tries them, then {seconds:g}s more", flush=True)
while time.time() < cap:
    ready, _, _ = select.select([watch], [], [], cap - time.time())
    if ready:
        event = os.read(watch, 4096)
        mask = struct.unpack_from("iIII", event)[1]
        if mask & IN_OPEN:
            print(f"a package task tried apt's locks at {time.time():.3f}; holding {seconds:g}s more", flush=True)
            time.sleep(seconds)
            break
else:
    print(f"nobody tried apt's locks in {CAP_SECONDS}s", flush=True)
for fd in held:
    os.close(fd)
print(f"released apt and dpkg locks at {time.time():.3f}", flush=True)
BUSY
chmod 0755 "$ROOTFS/usr/local/sbin/ec2-fleet-busy-boot"
cat > "$ROOTFS/etc/systemd/system/ec2-fleet-busy-boot.service" <<'BUSY'
[Unit]
Description=Emulated busy first boot: apt and dpkg locks held (test image only)
After=local-fs.target
Before=ssh.service

[Service]
Type=exec
ExecStart=/usr/local/sbin/ec2-fleet-busy-boot

[Install]
WantedBy=multi-user.target
BUSY

chroot "$ROOTFS" /bin/sh -eux <<CHROOT
# apt inside the host reaches Debian's archive over plain http.
printf 'deb %s bookworm main\ndeb %s bookworm-updates main\n' "$MIRROR" "$MIRROR" > /etc/apt/sources.list
# The default login user of an Ubuntu AMI.
useradd --create-home --shell /bin/bash --groups sudo ubuntu
echo 'ubuntu ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/90-cloud-init-users
chmod 0440 /etc/sudoers.d/90-cloud-init-users
install -d -m 0700 -o ubuntu -g ubuntu /home/ubuntu/.ssh
# Host keys are made on first boot (as cloud-init does), so every host has its own.
rm -f /etc/ssh/ssh_host_*
mkdir -p /etc/systemd/system/ssh.service.d
printf '[Service]\nExecStartPre=\nExecStartPre=/usr/bin/ssh-keygen -A\nExecStartPre=/usr/sbin/sshd -t\n' > /etc/systemd/system/ssh.service.d/10-hostkeys.conf
systemctl enable ssh.service
systemctl enable ec2-fleet-busy-boot.service
# Units that make no sense in a container.
systemctl mask getty@tty1.service console-getty.service systemd-logind.service \
  sys-kernel-config.mount sys-kernel-debug.mount systemd-remount-fs.service 2>/dev/null || true
# Keep the image small: no docs, no apt lists.
apt-get clean
rm -rf /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/*
# An empty, ancient package list: the first cache_valid_time check updates it, as on a new AMI.
touch -d @0 /var/lib/apt/lists
: > /etc/machine-id
CHROOT

tar -C "$ROOTFS" -c . | podman import \
  --change 'CMD ["/lib/systemd/systemd"]' \
  --change 'ENV container=podman' \
  --change 'STOPSIGNAL SIGRTMIN+3' \
  --change "LABEL ec2-fleet.recipe=$RECIPE" - "$IMAGE" >/dev/null
echo "built $IMAGE"
