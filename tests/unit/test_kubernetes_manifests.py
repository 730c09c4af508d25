"""The Kubernetes manifests (deploy/kubernetes) agree with compose, gunicorn and the declaration.

Each resource file is read as it is written (yaml.safe_load_all); kustomize's output is checked
too where kubectl, which carries kustomize, is installed. The schema check itself is
kubernetes-validate's, also run by docker/check.
"""

from __future__ import annotations

import importlib
import ipaddress
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from common.config import DEFAULTS, SET_FOR_PRODUCTION, Settings, declared
from devstack.gateway import (
    DERIVED,
    DERIVED_INPUTS,
    DERIVED_NAMES,
    TEMPLATE,
    derived_gateway_values,
)
from devstack.routes import FUNCTIONS
from devstack.stack import ROOT

Obj = dict[str, Any]

MANIFESTS = ROOT / "deploy" / "kubernetes"
KUSTOMIZATION: Obj = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
COMPOSE: Obj = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
DOCKERFILE = (ROOT / "docker" / "function.Dockerfile").read_text()
WEB = ROOT / "nginx" / "web"
KUBERNETES_VERSIONS = ("1.32.0", "1.37.0")
"""The API versions the manifests are validated against, here and in docker/check."""

GATEWAY = "gateway"
MIGRATE = "migrate"
FUNCTION_SETTINGS = {**declared("functions"), **declared("gunicorn")}
PASSWORD_SETTINGS = {"DATABASE_URL": ("app-url", False), "DATABASE_READ_URL": ("read-url", True)}
"""Settings that carry a password: from the Secret `database` (its key, whether optional)."""
FROM_SECRET = {name: key for name, key in PASSWORD_SETTINGS.items() if name in FUNCTION_SETTINGS}
"""Declared function settings that come from the Secret, not the ConfigMap."""
SET_HERE = {"PUBLIC_BASE_URL", "TRUSTED_PROXIES"}
"""What the manifests set otherwise than the declared default (SET_FOR_PRODUCTION says why)."""


def name_of(function: str) -> str:
    """Kubernetes object names are DNS labels: no underscores."""
    return function.replace("_", "-")


COMPOSE_NAMES = {
    **{function: name_of(function) for function in FUNCTIONS},
    "nginx": GATEWAY,
    "migrate": MIGRATE,
}
"""Each compose service and the name of its Kubernetes workload (a Job for migrate)."""


def manifest_files() -> list[Path]:
    return sorted(path for path in MANIFESTS.glob("*.yaml") if path.name != "kustomization.yaml")


def load(paths: list[Path]) -> list[Obj]:
    return [doc for path in paths for doc in yaml.safe_load_all(path.read_text()) if doc]


OBJECTS = load(manifest_files())


def the(kind: str, name: str) -> Obj:
    found = [o for o in OBJECTS if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{len(found)} {kind} named {name}"
    return found[0]


def of_kind(kind: str) -> list[Obj]:
    return [o for o in OBJECTS if o["kind"] == kind]


def workload(name: str) -> Obj:
    """The Deployment, or for migrate the Job, of that name."""
    return the("Job" if name == MIGRATE else "Deployment", name)


def pod_spec(name: str) -> Obj:
    spec: Obj = workload(name)["spec"]["template"]["spec"]
    return spec


def pod_labels(name: str) -> dict[str, str]:
    labels: dict[str, str] = workload(name)["spec"]["template"]["metadata"]["labels"]
    return labels


def container(name: str) -> Obj:
    containers = pod_spec(name)["containers"]
    assert len(containers) == 1
    only: Obj = containers[0]
    return only


def env_of(name: str) -> dict[str, Obj]:
    return {entry["name"]: entry for entry in container(name).get("env", [])}


def port_number(name: str, port: int | str) -> int:
    """A probe's or Service's port, by number or by the container port's name."""
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container(name)["ports"] if p.get("name") == port]
    return int(number)


def env_file(path: Path) -> dict[str, str]:
    """A kustomize env file: NAME=value lines, # comments."""
    pairs: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            assert name not in pairs, f"{name} twice in {path.name}"
            pairs[name] = value
    return pairs


def generator(name: str) -> Obj:
    (found,) = [g for g in KUSTOMIZATION["configMapGenerator"] if g["name"] == name]
    return dict(found)


def generator_files(name: str) -> dict[str, Path]:
    """The keys of a generated ConfigMap and the files they are read from."""
    files: dict[str, Path] = {}
    for entry in generator(name).get("files", []):
        key, _, source = entry.rpartition("=")
        path = (MANIFESTS / source).resolve()
        files[key or path.name] = path
    return files


def function_config() -> dict[str, str]:
    (path,) = generator("functions")["envs"]
    return env_file(MANIFESTS / path)


def image_name(image: str) -> str:
    """`registry/name:tag` (compose's tag may be `${IMAGE_TAG:-latest}`) without the tag."""
    path, slash, last = image.rpartition("/")
    return path + slash + last.partition(":")[0]


# ---- quantities ----------------------------------------------------------------------------------

_K8S_UNITS = {
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
}
_COMPOSE_UNITS = {"b": 1, "k": 2**10, "m": 2**20, "g": 2**30}


def parts(pattern: str, text: str) -> tuple[str, ...]:
    match = re.fullmatch(pattern, text)
    assert match, f"{text!r} is not {pattern}"
    return match.groups()


def k8s_bytes(quantity: str) -> int:
    number, unit = parts(r"(\d+)([A-Za-z]*)", quantity)
    return int(number) * _K8S_UNITS[unit] if unit else int(number)


def k8s_cpus(quantity: str | int) -> float:
    text = str(quantity)
    return int(text[:-1]) / 1000 if text.endswith("m") else float(text)


def compose_bytes(quantity: str) -> int:
    """Docker's sizes: 384m is 384 MiB."""
    number, unit = parts(r"(\d+)([bkmg]?)", quantity.lower())
    return int(number) * _COMPOSE_UNITS[unit or "b"]


def compose_tmpfs(service: str) -> dict[str, int]:
    """Compose's tmpfs mounts of a service: path -> size in bytes."""
    mounts: dict[str, int] = {}
    for entry in COMPOSE["services"][service].get("tmpfs", []):
        path, _, options = entry.partition(":")
        size = dict(option.split("=", 1) for option in options.split(",") if option)["size"]
        mounts[path] = compose_bytes(size)
    return mounts


def mounts(name: str) -> dict[str, Obj]:
    """Mount path -> the pod's volume mounted there (with the mount's subPath, if any)."""
    volumes = {volume["name"]: volume for volume in pod_spec(name).get("volumes", [])}
    return {
        mount["mountPath"]: {**volumes[mount["name"]], "subPath": mount.get("subPath")}
        for mount in container(name).get("volumeMounts", [])
    }


# ---- the kustomization ---------------------------------------------------------------------------


def test_the_kustomization_lists_exactly_the_files_present() -> None:
    resources = KUSTOMIZATION["resources"]
    assert len(resources) == len(set(resources))
    assert set(resources) == {path.name for path in manifest_files()}
    envs = {env for g in KUSTOMIZATION["configMapGenerator"] for env in g.get("envs", [])}
    present = {path.name for path in MANIFESTS.iterdir()}
    assert present == {*resources, *envs, "kustomization.yaml", "README.md"}


def test_generated_config_maps_are_the_repository_files() -> None:
    for g in KUSTOMIZATION["configMapGenerator"]:
        for path in generator_files(g["name"]).values():
            assert path.is_file(), path
    assert generator_files("gateway-config") == {
        "nginx.conf.template": TEMPLATE,
        "derived.envsh": DERIVED,
    }
    web = generator_files("gateway-web")
    assert sorted(web.values()) == sorted(WEB.iterdir())
    assert all(key == path.name for key, path in web.items())


def references(pod: Obj, kind: str) -> Iterator[tuple[str, str | None, bool]]:
    """(name, key, optional) of every ConfigMap or Secret a pod spec refers to (key None: all)."""
    ref, key_ref, volume_kind, volume_name = {
        "ConfigMap": ("configMapRef", "configMapKeyRef", "configMap", "name"),
        "Secret": ("secretRef", "secretKeyRef", "secret", "secretName"),
    }[kind]
    for each in pod["containers"]:
        for source in each.get("envFrom", []):
            if ref in source:
                yield source[ref]["name"], None, source[ref].get("optional", False)
        for entry in each.get("env", []):
            selected = entry.get("valueFrom", {}).get(key_ref)
            if selected:
                yield selected["name"], selected["key"], selected.get("optional", False)
    for volume in pod.get("volumes", []):
        if volume_kind in volume:
            source = volume[volume_kind]
            for item in source.get("items", [{"key": None}]):
                yield source[volume_name], item["key"], source.get("optional", False)


def referenced(kind: str) -> Iterator[tuple[str, str | None, bool]]:
    for name in COMPOSE_NAMES.values():
        yield from references(pod_spec(name), kind)


def test_every_config_map_and_secret_referred_to_exists_with_its_keys() -> None:
    generated = {g["name"] for g in KUSTOMIZATION["configMapGenerator"]}
    for name, key, optional in referenced("ConfigMap"):
        assert name in generated
        assert not optional, name
        if key is not None:
            keys = function_config() if name == "functions" else generator_files(name)
            assert key in keys, (name, key)
    secrets = {s["metadata"]["name"]: s for s in of_kind("Secret")}
    for name, key, optional in referenced("Secret"):
        assert name in secrets
        assert key is None or optional or key in secrets[name]["stringData"], (name, key)


def test_the_images_are_those_compose_builds() -> None:
    names = {entry["name"] for entry in KUSTOMIZATION["images"]}
    for service, name in COMPOSE_NAMES.items():
        image = image_name(container(name)["image"])
        assert image == image_name(COMPOSE["services"][service]["image"])
        assert image in names
    for function in FUNCTIONS:
        assert image_name(container(name_of(function))["image"]) == f"audiosvc/{function}"


# ---- the functions -------------------------------------------------------------------------------


@pytest.fixture
def gunicorn_port(monkeypatch: pytest.MonkeyPatch) -> int:
    """The port deploy/gunicorn_conf.py binds when BIND is unset (as in the images)."""
    monkeypatch.delenv("BIND", raising=False)
    conf = importlib.reload(importlib.import_module("deploy.gunicorn_conf"))
    return int(conf.bind.rpartition(":")[2])


@pytest.mark.parametrize("function", FUNCTIONS)
def test_a_function_listens_where_gunicorn_binds_and_its_service_points(
    function: str, gunicorn_port: int
) -> None:
    name = name_of(function)
    (port,) = container(name)["ports"]
    assert port["containerPort"] == gunicorn_port
    assert f"EXPOSE {gunicorn_port}" in DOCKERFILE
    service = the("Service", name)
    (service_port,) = service["spec"]["ports"]
    assert port_number(name, service_port["targetPort"]) == gunicorn_port
    assert service_port["port"] == gunicorn_port
    # Headless: the gateway resolves the name to each ready pod.
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"].items() <= pod_labels(name).items()
    assert workload(name)["spec"]["selector"]["matchLabels"].items() <= pod_labels(name).items()


def test_the_function_config_map_holds_every_declared_setting_with_its_default() -> None:
    config = function_config()
    expected = {name: DEFAULTS[name] for name in FUNCTION_SETTINGS if name not in FROM_SECRET}
    assert set(config) == set(expected)
    assert set(SET_FOR_PRODUCTION) >= SET_HERE
    differ = {name for name in config if config[name] != expected[name]}
    assert differ == SET_HERE & set(config), differ


def test_links_have_the_public_base_url_not_the_request_host() -> None:
    base = function_config()["PUBLIC_BASE_URL"]
    assert Settings.from_env({"PUBLIC_BASE_URL": base}).public_base_url == base
    assert base.startswith("https://")


@pytest.mark.parametrize("function", FUNCTIONS)
def test_a_function_reads_the_config_map_and_the_app_role_url(function: str) -> None:
    name = name_of(function)
    assert container(name)["envFrom"] == [{"configMapRef": {"name": "functions"}}]
    env = env_of(name)
    for setting, (key, optional) in FROM_SECRET.items():
        expected = {"name": "database", "key": key, **({"optional": True} if optional else {})}
        assert env[setting]["valueFrom"]["secretKeyRef"] == expected, setting
    # Nothing undeclared, and only settings gunicorn or the functions read.
    assert set(env) <= set(FUNCTION_SETTINGS)


def test_add_record_runs_one_worker_per_cpu_of_its_limit() -> None:
    source = env_of("add-record")["GUNICORN_WORKERS"]["valueFrom"]["resourceFieldRef"]
    assert source["resource"] == "limits.cpu"
    assert source["containerName"] == container("add-record")["name"]
    assert source.get("divisor", "1") == "1"


@pytest.mark.parametrize("function", FUNCTIONS)
def test_a_function_is_ready_when_its_healthz_answers(function: str, gunicorn_port: int) -> None:
    name = name_of(function)
    readiness = container(name)["readinessProbe"]["httpGet"]
    assert readiness["path"] == "/healthz"
    assert port_number(name, readiness["port"]) == gunicorn_port
    liveness = container(name)["livenessProbe"]
    if function == "add_record":
        # Under full load every thread may hold a slow upload: a /healthz liveness probe would
        # restart a busy pod. Alive means gunicorn's master listens.
        assert port_number(name, liveness["tcpSocket"]["port"]) == gunicorn_port
    else:
        assert liveness["httpGet"]["path"] == "/healthz"
        assert port_number(name, liveness["httpGet"]["port"]) == gunicorn_port


# ---- the gateway ---------------------------------------------------------------------------------


def gateway_literal(env: Mapping[str, Obj], name: str) -> str:
    value: str = env[name]["value"]
    return value


def test_the_gateway_runs_the_image_and_command_of_compose() -> None:
    nginx = COMPOSE["services"]["nginx"]
    assert container(GATEWAY)["image"] == nginx["image"]
    # `args`: the image's entrypoint, which renders the template, must run.
    assert "command" not in container(GATEWAY)
    assert container(GATEWAY)["args"] == nginx["command"]


def test_the_gateway_gets_what_its_template_and_derived_values_need() -> None:
    env = env_of(GATEWAY)
    template = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)\}", TEMPLATE.read_text()))
    assert template <= set(env) | set(DERIVED_NAMES)
    assert set(declared("gateway")) | set(DERIVED_INPUTS) <= set(env)
    assert set(COMPOSE["services"]["nginx"]["environment"]) <= set(env)
    for name in [*declared("gateway"), *DERIVED_INPUTS]:
        if "value" in env[name]:
            differs = gateway_literal(env, name) != DEFAULTS[name]
            assert differs == (name in SET_HERE), name
        else:
            # The functions' own value, so that the gateway's limits follow theirs.
            assert env[name]["valueFrom"]["configMapKeyRef"] == {"name": "functions", "key": name}
            assert name in function_config()


def test_the_gateway_takes_client_addresses_from_the_pod_network_only() -> None:
    """Behind an Ingress, nginx sees the controller's pod; the client's address is in its
    X-Forwarded-For, believed from pod addresses only, never from the internet."""
    trusted = gateway_literal(env_of(GATEWAY), "TRUSTED_PROXIES")
    networks = [ipaddress.ip_network(each) for each in re.split(r"[\s,]+", trusted.strip())]
    assert networks
    assert all(network.is_private for network in networks), networks
    assert not any(ipaddress.ip_address(CLIENT.ip or "") in network for network in networks)
    directives = derived_gateway_values({"TRUSTED_PROXIES": trusted})["REAL_IP_DIRECTIVES"]
    assert directives.count("set_real_ip_from ") == len(networks)
    assert "real_ip_header X-Forwarded-For;" in directives


def test_the_gateway_listens_where_its_service_and_probes_point() -> None:
    env = env_of(GATEWAY)
    port = int(gateway_literal(env, "NGINX_PORT"))
    assert [p["containerPort"] for p in container(GATEWAY)["ports"]] == [port]
    (service_port,) = the("Service", GATEWAY)["spec"]["ports"]
    assert port_number(GATEWAY, service_port["targetPort"]) == port
    assert port >= 1024  # unprivileged
    for probe in ("readinessProbe", "livenessProbe"):
        check = container(GATEWAY)[probe]["httpGet"]
        assert (check["path"], port_number(GATEWAY, check["port"])) == ("/", port)


def test_the_gateway_finds_each_function_through_its_headless_service(gunicorn_port: int) -> None:
    env = env_of(GATEWAY)
    for function in FUNCTIONS:
        upstream = f"{function.upper()}_UPSTREAM"
        service = the("Service", name_of(function))
        assert gateway_literal(env, upstream) == (
            f"{service['metadata']['name']}.$(POD_NAMESPACE).svc.$(CLUSTER_DOMAIN):"
            f"{gunicorn_port} resolve"
        )
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert gateway_literal(env, "NGINX_RESOLVER")


@pytest.mark.parametrize("name", sorted(COMPOSE_NAMES.values()))
def test_variables_are_defined_before_a_value_uses_them(name: str) -> None:
    """Kubernetes expands $(NAME) in a value only from the variables listed before it."""
    defined: set[str] = set()
    for entry in container(name).get("env", []):
        used = set(re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", entry.get("value", "")))
        assert used <= defined, (entry["name"], used - defined)
        defined.add(entry["name"])


def test_the_gateway_mounts_what_compose_mounts() -> None:
    env = env_of(GATEWAY)
    found = mounts(GATEWAY)
    compose_targets = {
        volume.split(":")[1] for volume in COMPOSE["services"]["nginx"].get("volumes", [])
    }
    assert set(found) == compose_targets | set(compose_tmpfs("nginx"))
    template = found[f"/etc/nginx/templates/{TEMPLATE.name}"]
    assert (template["configMap"]["name"], template["subPath"]) == (
        "gateway-config",
        "nginx.conf.template",
    )
    (derived_path,) = [path for path in found if path.startswith("/docker-entrypoint.d/")]
    derived = found[derived_path]
    assert (derived["configMap"]["name"], derived["subPath"]) == ("gateway-config", "derived.envsh")
    # The entrypoint sources *.envsh only when executable, in name order, before it renders.
    assert derived_path.endswith(".envsh")
    assert Path(derived_path).name < "20-envsubst-on-templates.sh"
    (item,) = [i for i in derived["configMap"]["items"] if i["key"] == "derived.envsh"]
    assert item["mode"] & 0o111 == 0o111
    assert found[gateway_literal(env, "STATIC_ROOT")]["configMap"]["name"] == "gateway-web"
    for writable in ("NGINX_ENVSUBST_OUTPUT_DIR", "NGINX_RUN_DIR", "RECORD_CACHE_DIR"):
        assert "emptyDir" in found[gateway_literal(env, writable)], writable
    rendered_to = f"{gateway_literal(env, 'NGINX_ENVSUBST_OUTPUT_DIR')}/nginx.conf"
    assert rendered_to in container(GATEWAY)["args"]


# ---- resources, scaling, disruptions -------------------------------------------------------------


@pytest.mark.parametrize(("service", "name"), sorted(COMPOSE_NAMES.items()))
def test_limits_and_temp_space_are_at_least_those_of_compose(service: str, name: str) -> None:
    compose_limits = COMPOSE["services"][service]["deploy"]["resources"]["limits"]
    resources = container(name)["resources"]
    limits = resources["limits"]
    assert k8s_cpus(limits["cpu"]) >= float(compose_limits["cpus"])
    assert k8s_bytes(limits["memory"]) >= compose_bytes(compose_limits["memory"])
    for kind in ("cpu", "memory"):
        assert kind in resources["requests"], kind
    # A memory request below the limit would let the node overcommit what the pod may use.
    assert k8s_bytes(resources["requests"]["memory"]) == k8s_bytes(limits["memory"])
    found = mounts(name)
    for path, size in compose_tmpfs(service).items():
        volume = found[path]["emptyDir"]
        assert volume["medium"] == "Memory", path
        assert k8s_bytes(volume["sizeLimit"]) >= size, path


def test_add_record_is_guaranteed_what_its_limits_say() -> None:
    resources = container("add-record")["resources"]
    assert resources["requests"] == resources["limits"]


def test_the_autoscaler_scales_add_record_on_cpu() -> None:
    (autoscaler,) = of_kind("HorizontalPodAutoscaler")
    assert autoscaler["apiVersion"] == "autoscaling/v2"
    target = autoscaler["spec"]["scaleTargetRef"]
    deployment = the(target["kind"], target["name"])
    assert (target["apiVersion"], deployment["apiVersion"]) == ("apps/v1", "apps/v1")
    assert deployment is workload("add-record")
    # The autoscaler owns the count: an apply must not reset it.
    assert "replicas" not in deployment["spec"]
    (metric,) = autoscaler["spec"]["metrics"]
    assert (metric["type"], metric["resource"]["name"]) == ("Resource", "cpu")
    assert autoscaler["spec"]["minReplicas"] >= 2


def test_every_deployment_has_one_disruption_budget_of_its_own() -> None:
    budgets = of_kind("PodDisruptionBudget")
    deployments = of_kind("Deployment")
    assert len(budgets) == len(deployments)
    for deployment in deployments:
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        covering = [b for b in budgets if selects(b["spec"]["selector"], labels)]
        assert len(covering) == 1, deployment["metadata"]["name"]
        assert covering[0]["metadata"]["name"] == deployment["metadata"]["name"]


# ---- security ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(COMPOSE_NAMES.values()))
def test_every_pod_runs_locked_down(name: str) -> None:
    pod = pod_spec(name)
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False
    context = {**pod["securityContext"], **container(name).get("securityContext", {})}
    assert context["runAsNonRoot"] is True
    assert context["runAsUser"] != 0
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["capabilities"] == {"drop": ["ALL"]}


@pytest.mark.parametrize("name", [*map(name_of, FUNCTIONS), MIGRATE])
def test_function_images_run_as_their_own_user(name: str) -> None:
    user, group = re.findall(r"^USER (\d+):(\d+)$", DOCKERFILE, re.MULTILINE)[0]
    context = pod_spec(name)["securityContext"]
    assert (context["runAsUser"], context["runAsGroup"]) == (int(user), int(group))


def test_the_migrate_job_is_compose_migrate_with_the_owner_url() -> None:
    migrate = COMPOSE["services"]["migrate"]
    job = container(MIGRATE)
    assert job["command"] == migrate["command"]
    assert job["envFrom"] == [{"configMapRef": {"name": "functions"}}]
    env = env_of(MIGRATE)
    assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "database",
        "key": "owner-url",
    }
    assert env["DATABASE_APP_ROLE"]["value"] == migrate["environment"]["DATABASE_APP_ROLE"]
    assert env["DATABASE_APP_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "database",
        "key": "app-password",
    }
    assert set(env) <= set(FUNCTION_SETTINGS) | set(declared("migrate"))
    assert pod_spec(MIGRATE)["restartPolicy"] == "Never"


def test_only_the_migrate_job_holds_the_owner_url() -> None:
    holders = {
        name
        for name in COMPOSE_NAMES.values()
        for entry in container(name).get("env", [])
        if entry.get("valueFrom", {}).get("secretKeyRef", {}).get("key") == "owner-url"
    }
    assert holders == {MIGRATE}
    assert all(
        "secretRef" not in s
        for n in COMPOSE_NAMES.values()
        for s in container(n).get("envFrom", [])
    )


def test_the_app_url_names_the_role_the_migrate_job_creates() -> None:
    (secret,) = of_kind("Secret")
    role = env_of(MIGRATE)["DATABASE_APP_ROLE"]["value"]
    data = secret["stringData"]
    assert data["app-url"].split("://", 1)[1].startswith(f"{role}:{data['app-password']}@")


FIRST_APPLY = "app.kubernetes.io/component notin (create-user,add-record,get-record,gateway)"
"""The label selector of the first of the two applies deploy/kubernetes/README.md gives."""


def test_the_first_apply_runs_the_migration_and_starts_no_function() -> None:
    assert f"-l '{FIRST_APPLY}'" in (MANIFESTS / "README.md").read_text()
    key, values = parts(r"(\S+) notin \(([^)]*)\)", FIRST_APPLY)
    selector = {
        "matchExpressions": [{"key": key, "operator": "NotIn", "values": values.split(",")}]
    }
    first = {
        (o["kind"], o["metadata"]["name"])
        for o in OBJECTS
        if selects(selector, o["metadata"].get("labels", {}))
    }
    assert not {kind for kind, _ in first} & {"Deployment", "HorizontalPodAutoscaler"}
    # The Job, and everything it needs: its namespace, Secret, policies (its way to the database).
    needs = {("Job", MIGRATE), ("Namespace", of_kind("Namespace")[0]["metadata"]["name"])}
    needs |= {("Secret", name) for name, *_ in references(pod_spec(MIGRATE), "Secret")}
    needs |= {("NetworkPolicy", p["metadata"]["name"]) for p in of_kind("NetworkPolicy")}
    assert needs <= first
    # Its ConfigMap is generated: kustomize labels it with the generator's labels only.
    for name, *_ in references(pod_spec(MIGRATE), "ConfigMap"):
        labels = {
            **KUSTOMIZATION.get("generatorOptions", {}).get("labels", {}),
            **generator(name).get("options", {}).get("labels", {}),
        }
        assert selects(selector, labels), name


# ---- network policies ----------------------------------------------------------------------------


def selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A label selector (matchLabels and matchExpressions) against a set of labels."""
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values")
        matched = {
            "In": key in labels and labels[key] in (values or []),
            "NotIn": key not in labels or labels[key] not in (values or []),
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not matched:
            return False
    return True


(NAMESPACE,) = of_kind("Namespace")
NAMESPACE_LABELS = {
    # kustomize gives the Namespace the kustomization's `namespace` as its name.
    "kubernetes.io/metadata.name": KUSTOMIZATION["namespace"],
    **NAMESPACE["metadata"]["labels"],
}


@dataclass(frozen=True)
class Peer:
    """One end of a connection: a pod (with its namespace's labels) or an address outside."""

    pod: Mapping[str, str] = field(default_factory=dict)
    namespace: Mapping[str, str] | None = None
    ip: str | None = None

    @property
    def ours(self) -> bool:
        return self.namespace == NAMESPACE_LABELS


def ours(name: str) -> Peer:
    return Peer(pod_labels(name), NAMESPACE_LABELS, "10.0.0.10")


CLIENT = Peer(ip="203.0.113.7")
DNS = Peer({"k8s-app": "kube-dns"}, {"kubernetes.io/metadata.name": "kube-system"}, "10.0.0.2")


def database() -> Peer:
    (rule,) = the("NetworkPolicy", "database")["spec"]["egress"]
    (peer,) = rule["to"]
    return Peer(ip=str(next(ipaddress.ip_network(peer["ipBlock"]["cidr"]).hosts())))


def peer_matches(peers: list[Obj] | None, peer: Peer) -> bool:
    if not peers:
        return True
    for candidate in peers:
        if "ipBlock" in candidate:
            block = candidate["ipBlock"]
            if peer.ip is not None and not peer.ours:
                address = ipaddress.ip_address(peer.ip)
                excepted = any(address in ipaddress.ip_network(e) for e in block.get("except", []))
                if address in ipaddress.ip_network(block["cidr"]) and not excepted:
                    return True
            continue
        if peer.namespace is None:
            continue
        if "namespaceSelector" in candidate:
            in_namespace = selects(candidate["namespaceSelector"], peer.namespace)
        else:
            in_namespace = peer.ours
        if in_namespace and selects(candidate.get("podSelector", {}), peer.pod):
            return True
    return False


def port_matches(ports: list[Obj] | None, port: int, protocol: str) -> bool:
    if not ports:
        return True
    return any(
        p.get("protocol", "TCP") == protocol and p["port"] <= port <= p.get("endPort", p["port"])
        for p in ports
    )


def allowed_by(direction: str, subject: Peer, other: Peer, port: int, protocol: str) -> bool:
    """Whether the policies selecting `subject` let it talk with `other` in this direction."""
    rules_key, peers_key = {"Ingress": ("ingress", "from"), "Egress": ("egress", "to")}[direction]
    policies = [
        p
        for p in of_kind("NetworkPolicy")
        if direction in p["spec"]["policyTypes"] and selects(p["spec"]["podSelector"], subject.pod)
    ]
    if not policies:
        return True  # not isolated in this direction
    return any(
        port_matches(rule.get("ports"), port, protocol) and peer_matches(rule.get(peers_key), other)
        for policy in policies
        for rule in policy["spec"].get(rules_key, [])
    )


def connects(source: Peer, target: Peer, port: int, protocol: str = "TCP") -> bool:
    """Egress allowed at the source (if it is ours) and ingress at the target (if it is ours)."""
    return (not source.ours or allowed_by("Egress", source, target, port, protocol)) and (
        not target.ours or allowed_by("Ingress", target, source, port, protocol)
    )


FUNCTION_NAMES = [name_of(function) for function in FUNCTIONS]
ALL_OURS = [*FUNCTION_NAMES, GATEWAY, MIGRATE]


def test_network_policies_select_pods_that_exist() -> None:
    for policy in of_kind("NetworkPolicy"):
        selector = policy["spec"]["podSelector"]
        assert any(selects(selector, pod_labels(name)) for name in ALL_OURS), policy


def test_anyone_reaches_the_gateway_and_only_on_its_port() -> None:
    port = int(gateway_literal(env_of(GATEWAY), "NGINX_PORT"))
    assert connects(CLIENT, ours(GATEWAY), port)
    assert not connects(CLIENT, ours(GATEWAY), 8000)
    for name in [*FUNCTION_NAMES, MIGRATE]:
        assert not connects(CLIENT, ours(name), 8000), name


@pytest.mark.parametrize("function", FUNCTIONS)
def test_only_the_gateway_reaches_a_function(function: str, gunicorn_port: int) -> None:
    target = ours(name_of(function))
    assert connects(ours(GATEWAY), target, gunicorn_port)
    assert not connects(ours(GATEWAY), target, 5432)
    for name in ALL_OURS:
        if name != GATEWAY:
            assert not connects(ours(name), target, gunicorn_port), name


def test_only_the_functions_and_the_migrate_job_reach_the_database() -> None:
    reach = {name for name in ALL_OURS if connects(ours(name), database(), 5432)}
    assert reach == {*FUNCTION_NAMES, MIGRATE}
    assert not connects(ours(GATEWAY), database(), 5432)
    assert not connects(ours(FUNCTION_NAMES[0]), database(), 22)


@pytest.mark.parametrize("name", ALL_OURS)
def test_a_pod_resolves_names_and_reaches_nothing_else_outside(name: str) -> None:
    assert connects(ours(name), DNS, 53, "UDP")
    assert connects(ours(name), DNS, 53, "TCP")
    assert not connects(ours(name), CLIENT, 443)
    assert not connects(ours(name), DNS, 443)


# ---- the schemas, and what kustomize makes of it all ---------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_is_valid_strictly(version: str) -> None:
    for obj in OBJECTS:
        kubernetes_validate.validate(obj, version, strict=True)


def test_docker_check_validates_against_the_same_versions() -> None:
    check = (ROOT / "docker" / "check").read_text()
    (line,) = re.findall(r'^KUBERNETES_VERSIONS="([^"]*)"$', check, re.MULTILINE)
    assert tuple(line.split()) == KUBERNETES_VERSIONS


@pytest.fixture(scope="module")
def rendered() -> list[Obj]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (which carries kustomize) is not installed")
    result = subprocess.run(
        [kubectl, "kustomize", "--load-restrictor=LoadRestrictionsNone", str(MANIFESTS)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def test_kustomize_renders_the_repository_files_into_the_namespace(rendered: list[Obj]) -> None:
    namespace = KUSTOMIZATION["namespace"]
    assert all(
        o["metadata"].get("namespace") == namespace for o in rendered if o["kind"] != "Namespace"
    )
    maps = {o["metadata"]["name"]: o for o in rendered if o["kind"] == "ConfigMap"}
    by_base = {re.sub(r"-[a-z0-9]{10}$", "", name): name for name in maps}
    assert maps[by_base["functions"]]["data"] == function_config()
    config = maps[by_base["gateway-config"]]["data"]
    assert config == {
        "nginx.conf.template": TEMPLATE.read_text(),
        "derived.envsh": DERIVED.read_text(),
    }
    web = maps[by_base["gateway-web"]]["data"]
    assert web == {path.name: path.read_text() for path in WEB.iterdir()}
    # Every reference to a generated ConfigMap now names it with its hash suffix.
    pods = [o["spec"]["template"]["spec"] for o in rendered if o["kind"] in ("Deployment", "Job")]
    names = {name for pod in pods for name, *_ in references(pod, "ConfigMap")}
    assert names == set(maps)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_the_kustomize_output_is_valid_strictly(rendered: list[Obj], version: str) -> None:
    for obj in rendered:
        kubernetes_validate.validate(obj, version, strict=True)
