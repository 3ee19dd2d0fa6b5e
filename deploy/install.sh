#!/usr/bin/env bash
# Deploy cargobay the way the MaxScale CI team deploys its registry, in one command:
# data and auth directories, the htpasswd user, Swarm mode, the stack, optionally the
# nginx site, then a check that /v2/ refuses strangers and lets the user in.
#
#   sudo deploy/install.sh --user ci                     # prompts for ci's password
#   echo "$PASSWORD" | sudo deploy/install.sh --user ci --password-stdin --nginx
#   sudo deploy/install.sh --uninstall                   # removes the stack, keeps the data
#
# Idempotent: every step looks first and changes only what is not right yet, and the
# last line says whether anything changed. Run with --help for every option.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
UID_GID=10001            # the image's user (see Dockerfile)

home=/home/docker-registry
image=cargobay:latest
port=5000
stack=maxscale-docker-registry
user=""
password_stdin=0
with_nginx=0
nginx_dir=/etc/nginx
nginx_listen=80
server_name=""           # default: this host's fully qualified name
advertise_addr=127.0.0.1
uninstall=0
wait_seconds=120
reload_seconds=30        # how long nginx may take to serve the site after a reload

usage() {
    cat <<EOF
usage: $0 --user NAME [--password-stdin] [options]
       $0 --uninstall [--stack NAME]

  --user NAME          the htpasswd user to create, or whose password to set
  --password-stdin     read the password from standard input (else a prompt)
  --home DIR           data home: DIR/registry and DIR/auth (default $home)
  --image IMAGE        the cargobay image (default $image; built from this checkout if absent)
  --port PORT          published port (default $port)
  --stack NAME         stack name (default $stack)
  --nginx              install deploy/docker-registry.nginx as a site and reload nginx
  --nginx-dir DIR      nginx configuration directory (default $nginx_dir)
  --nginx-listen [ADDR:]PORT
                       where the site listens (default $nginx_listen, as shipped)
  --server-name NAME   the name clients use for the registry: the site's server_name and
                       the docker login line (default: this host's name, hostname -f)
  --advertise-addr IP  address for 'docker swarm init' when Swarm mode is off (default $advertise_addr)
  --uninstall          remove the stack; the data and the password file stay
EOF
}

while [ $# -gt 0 ]; do
    case "$1" in
        --user) user=$2; shift ;;
        --password-stdin) password_stdin=1 ;;
        --home) home=$2; shift ;;
        --image) image=$2; shift ;;
        --port) port=$2; shift ;;
        --stack) stack=$2; shift ;;
        --nginx) with_nginx=1 ;;
        --nginx-dir) nginx_dir=$2; shift ;;
        --nginx-listen) nginx_listen=$2; shift ;;
        --server-name) server_name=$2; shift ;;
        --advertise-addr) advertise_addr=$2; shift ;;
        --uninstall) uninstall=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

changes=0
say() { echo "install.sh: $*"; }
changed() { changes=$((changes + 1)); say "changed: $*"; }
unchanged() { say "ok: $*"; }
die() { echo "install.sh: error: $*" >&2; exit 1; }

command -v docker >/dev/null || die "docker is not installed"
command -v curl >/dev/null || die "curl is not installed (the last step checks /v2/ with it)"
service="${stack}_registry"

if [ "$uninstall" = 1 ]; then
    if docker stack ls --format '{{.Name}}' | grep -qx "$stack"; then
        docker stack rm "$stack" >/dev/null
        for _ in $(seq "$wait_seconds"); do
            docker service inspect "$service" >/dev/null 2>&1 || break
            sleep 1
        done
        changed "stack $stack removed; the data in $home stays"
    else
        unchanged "no stack $stack"
    fi
    exit 0
fi

[ -n "$user" ] || { usage >&2; die "--user is required"; }
if [ "$password_stdin" = 1 ]; then
    IFS= read -r password || true
else
    read -r -s -p "Password for $user: " password; echo
fi
[ -n "$password" ] || die "the password is empty"
if [ "$with_nginx" = 1 ]; then
    command -v nginx >/dev/null || die "--nginx: nginx is not installed"
    [[ $nginx_listen =~ ^(([0-9]{1,3}\.){3}[0-9]{1,3}:)?[0-9]+$ ]] ||
        die "--nginx-listen $nginx_listen: expected PORT or IPv4-ADDRESS:PORT"
fi
host=${server_name:-$(hostname -f 2>/dev/null || hostname)}
site_name=$host  # the nginx site's server_name
if ! [[ $host =~ ^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$ ]]; then
    [ -z "$server_name" ] || die "--server-name $server_name: expected a host name or an IPv4 address"
    site_name=_  # this host's own name does not fit in server_name: keep the shipped catch-all
fi

# GET URL without and with the user's credentials: true when the answers are 401 and 200;
# $answers says what they were. Extra arguments go to curl (a Host header).
quoted=${password//\\/\\\\}  # curl's config syntax: backslash and double quote escaped
quoted=${quoted//\"/\\\"}
answers=""
v2_answers() {  # url [curl options]
    local url=$1 stranger known
    shift
    stranger=$(curl -s --noproxy '*' --max-time 10 -o /dev/null -w '%{http_code}' "$@" "$url" || true)
    known=$(curl -s --noproxy '*' --max-time 10 -o /dev/null -w '%{http_code}' -K- "$@" "$url" \
        <<<"user = \"$user:$quoted\"" || true)
    answers="$stranger without credentials and $known to $user"
    [ "$stranger" = 401 ] && [ "$known" = 200 ]
}
wait_for_v2() {  # seconds url [curl options]: v2_answers once a second until it holds
    local deadline=$((SECONDS + $1))
    shift
    until v2_answers "$@"; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 1
    done
}

# 1. The image: build it from this checkout when it is not there.
if docker image inspect "$image" >/dev/null 2>&1; then
    unchanged "image $image"
else
    [ -f "$REPO/Dockerfile" ] || die "image $image not found and no Dockerfile in $REPO"
    docker build -t "$image" "$REPO"
    changed "image $image built from $REPO"
fi

# 2. Directories: the data for the image's user only, the password file readable by it.
ensure_dir() {  # path owner mode
    local path=$1 owner=$2 mode=$3
    if [ -d "$path" ] && [ "$(stat -c '%u:%g %a' "$path")" = "$owner $mode" ]; then
        unchanged "directory $path"
        return
    fi
    mkdir -p "$path"
    chown "$owner" "$path"
    chmod "$mode" "$path"
    changed "directory $path ($owner, mode $mode)"
}
ensure_dir "$home/registry" "$UID_GID:$UID_GID" 750
ensure_dir "$home/auth" "0:$UID_GID" 750
# A data directory registry:2 filled as root: everything in it must become the image user's.
if [ -n "$(find "$home/registry" ! -uid "$UID_GID" -print -quit)" ]; then
    chown -R "$UID_GID:$UID_GID" "$home/registry"
    changed "data in $home/registry given to uid $UID_GID (it was registry:2's)"
fi

# 3. The user, with bcrypt, by the image's own `cargobay user` (no htpasswd tool needed).
htpasswd="$home/auth/docker-registry.htpasswd"
cargobay_user() {  # action: runs `cargobay user ACTION USER` on the password file
    printf '%s\n' "$password" | docker run --rm -i --network none --user 0:0 \
        -v "$home/auth:/auth" --entrypoint cargobay "$image" \
        user "$1" "$user" --file /auth/docker-registry.htpasswd --password-stdin >/dev/null
}
if [ -f "$htpasswd" ] && awk -F: -v user="$user" '$1 == user { found = 1 } END { exit !found }' "$htpasswd"; then
    if cargobay_user check; then
        unchanged "user $user in $htpasswd"
    else
        cargobay_user passwd
        changed "password of $user in $htpasswd"
    fi
else
    cargobay_user add
    changed "user $user added to $htpasswd"
fi
if [ "$(stat -c '%u:%g %a' "$htpasswd")" != "0:$UID_GID 640" ]; then
    chown "0:$UID_GID" "$htpasswd"
    chmod 640 "$htpasswd"
    changed "$htpasswd owner and mode"
fi

# 4. Swarm mode.
if [ "$(docker info --format '{{.Swarm.LocalNodeState}}')" = active ]; then
    unchanged "swarm mode"
else
    # Cluster traffic on the advertised address only (loopback by default: a one-node swarm).
    docker swarm init --advertise-addr "$advertise_addr" --listen-addr "$advertise_addr:2377" >/dev/null
    changed "swarm initialised (advertise address $advertise_addr)"
fi

# 5. The stack. `docker stack deploy` always updates; the service spec says if it changed.
spec() { docker service inspect "$service" --format '{{json .Spec}}' 2>/dev/null || true; }
before=$(spec)
CARGOBAY_IMAGE=$image CARGOBAY_PORT=$port CARGOBAY_HOME=$home \
    docker stack deploy --resolve-image never -c "$HERE/docker-registry.yaml" "$stack" >/dev/null
if [ "$(spec)" = "$before" ]; then
    unchanged "stack $stack"
else
    changed "stack $stack deployed"
fi

# 6. The check, straight to the published port: strangers get 401, the user gets 200.
url="http://127.0.0.1:$port/v2/"
wait_for_v2 "$wait_seconds" "$url" ||
    die "$url answered $answers, expected 401 and 200 (docker service ps $service)"
say "checked: $url answers 401 without credentials and 200 to $user"

# 7. The nginx site. It is reloaded when its files changed, and also when /v2/ through it
# does not answer as above: a reload an earlier run could not do (nginx -t failed, nginx
# was down) is done now, not reported as "nothing changed".
if [ "$with_nginx" = 1 ]; then
    site="$nginx_dir/sites-available/docker-registry.nginx"
    link="$nginx_dir/sites-enabled/docker-registry.nginx"
    site_changed=0
    # the shipped site with the upstream at the published port, the chosen listen, and the
    # name clients use (so that the site answers even where another is the default server)
    rendered=$(sed -e "s/127\.0\.0\.1:5000;/127.0.0.1:$port;/" \
        -e "s/^\([[:space:]]*\)listen 80;/\1listen $nginx_listen;/" \
        -e "s/^\([[:space:]]*\)server_name _;/\1server_name $site_name;/" "$HERE/docker-registry.nginx")
    if [ "$rendered" != "$(cat "$site" 2>/dev/null)" ]; then
        mkdir -p "$(dirname "$site")"
        printf '%s\n' "$rendered" > "$site"
        changed "nginx site $site"
        site_changed=1
    else
        unchanged "nginx site $site"
    fi
    if [ "$(readlink "$link" 2>/dev/null)" != "$site" ]; then
        mkdir -p "$(dirname "$link")"
        ln -sfn "$site" "$link"
        changed "nginx site enabled: $link"
        site_changed=1
    else
        unchanged "nginx site enabled"
    fi
    # what the clients do: the site's port, under the name the login line below gives them
    nginx_port=${nginx_listen##*:}
    nginx_addr=127.0.0.1
    case "$nginx_listen" in
        *:*) [ "${nginx_listen%:*}" = 0.0.0.0 ] || nginx_addr=${nginx_listen%:*} ;;
    esac
    login_host=$host
    [ "$nginx_port" = 80 ] || login_host="$host:$nginx_port"
    via="http://$nginx_addr:$nginx_port/v2/"
    if [ "$site_changed" = 0 ] && v2_answers "$via" -H "Host: $login_host"; then
        unchanged "nginx serves the site"
    else
        [ "$site_changed" = 1 ] || say "$via answered $answers: nginx does not serve the site, reloading it"
        nginx_conf=(-c "$nginx_dir/nginx.conf")
        nginx "${nginx_conf[@]}" -t -q || die "nginx -t failed: fix the configuration above, then run this again"
        if ! refused=$(nginx "${nginx_conf[@]}" -s reload 2>&1); then
            { command -v systemctl >/dev/null && systemctl reload nginx; } ||
                die "nginx did not reload (${refused:-no message}): is it running? Start it, then run this again"
        fi
        changed "nginx reloaded"
        wait_for_v2 "$reload_seconds" "$via" -H "Host: $login_host" ||
            die "through nginx, $via answered $answers to Host: $login_host, expected 401 and 200;" \
                "does another site claim the name $host on port $nginx_port?"
    fi
    say "checked: $via answers 401 without credentials and 200 to $user"
else
    login_host="$host:$port"
fi

if [ "$changes" = 0 ]; then
    say "nothing changed, everything was already in place"
else
    say "$changes changes made"
fi
echo
echo "On the build servers and test clients:"
echo "  docker login $login_host -u $user"
