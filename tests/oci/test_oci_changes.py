import pytest

from oci.changes import (apply_changes, empty_container_config, parse_duration_ns,
                         process_word, process_words)
from oci.errors import InvalidArgument


def ap(*changes, base=None):
    return apply_changes(base, list(changes))


def test_cmd_and_entrypoint_forms():
    assert ap('CMD ["a", "b c"]')["Cmd"] == ["a", "b c"]
    assert ap("CMD echo $HOME")["Cmd"] == ["/bin/sh", "-c", "echo $HOME"]  # no expansion
    assert ap("CMD [not json")["Cmd"] == ["/bin/sh", "-c", "[not json"]
    assert ap("ENTRYPOINT top -b")["Entrypoint"] == ["/bin/sh", "-c", "top -b"]
    # ENTRYPOINT resets an inherited CMD unless CMD was given in the same changes
    base = empty_container_config() | {"Cmd": ["old"]}
    assert ap('ENTRYPOINT ["e"]', base=base)["Cmd"] is None
    assert ap('CMD ["c"]', 'ENTRYPOINT ["e"]', base=base)["Cmd"] == ["c"]
    assert ap("cmd x")["Cmd"] == ["/bin/sh", "-c", "x"]  # case-insensitive
    sh = empty_container_config() | {"Shell": ["/bin/bash", "-lc"]}
    assert ap("CMD x", base=sh)["Cmd"] == ["/bin/bash", "-lc", "x"]


def test_env_forms_and_expansion():
    c = ap("ENV A=1", "ENV B=${A}2 C='$A' D=\"$A x\"", "ENV LEGACY some value here",
           "ENV E=${NOPE:-dflt} F=${A:+set} G=${NOPE:+set}", "ENV A=3")
    env = dict(e.split("=", 1) for e in c["Env"])
    assert env == {"A": "3", "B": "12", "C": "$A", "D": "1 x", "LEGACY": "some value here",
                   "E": "dflt", "F": "set", "G": ""}
    assert c["Env"][-1] == "A=3"  # re-set variables move to the end
    c = ap("ENV PATH=$PATH:/opt/bin", base=empty_container_config() | {"Env": ["PATH=/bin"]})
    assert c["Env"] == ["PATH=/bin:/opt/bin"]
    with pytest.raises(InvalidArgument, match="Must be of the form: name=value"):
        ap("ENV A=1 B")
    with pytest.raises(InvalidArgument):
        ap("ENV")
    with pytest.raises(InvalidArgument):
        ap("ENV onlyname")


def test_other_instructions():
    c = ap("WORKDIR /a", "WORKDIR b/../c", "USER 1000:1000", "LABEL a=b c=\"d e\"",
           "LABEL legacy value", "EXPOSE 80/tcp 8000-8002/udp", "VOLUME /v1 /v2",
           'VOLUME ["/v3"]', "STOPSIGNAL 9", "ONBUILD RUN make", "HEALTHCHECK --interval=5s --retries=2 CMD curl -f x")
    assert c["WorkingDir"] == "/a/c" and c["User"] == "1000:1000"
    assert c["Labels"] == {"a": "b", "c": "d e", "legacy": "value"}
    assert c["ExposedPorts"] == {"80/tcp": {}, "8000/udp": {}, "8001/udp": {}, "8002/udp": {}}
    assert c["Volumes"] == {"/v1": {}, "/v2": {}, "/v3": {}}
    assert c["StopSignal"] == "9" and c["OnBuild"] == ["RUN make"]
    assert c["Healthcheck"] == {"Interval": 5_000_000_000, "Retries": 2,
                                "Test": ["CMD-SHELL", "curl -f x"]}
    assert ap("HEALTHCHECK NONE")["Healthcheck"] == {"Test": ["NONE"]}
    assert ap('HEALTHCHECK CMD ["a","b"]')["Healthcheck"] == {"Test": ["CMD", "a", "b"]}
    assert ap("ENV D=/srv", "WORKDIR $D")["WorkingDir"] == "/srv"


@pytest.mark.parametrize("change,msg", [
    ("RUN echo", "run is not a valid change command"),
    ("FROM x", "from is not a valid change command"),
    ("COPY a b", "copy is not a valid change command"),
    ("STOPSIGNAL SIGFOO", "Invalid signal: SIGFOO"),
    ("EXPOSE abc", "invalid containerPort: abc"),
    ("ONBUILD ONBUILD RUN x", "Chaining ONBUILD"),
    ("ENV A='unterminated", "matching single-quote"),
])
def test_invalid(change, msg):
    with pytest.raises(InvalidArgument, match=msg):
        ap(change)


def test_words_and_durations():
    assert process_words("a 'b c' \"d\\\"e\" f\\ g", None) == ["a", "b c", 'd"e', "f g"]
    assert process_word("$X-${Y}", {"X": "1", "Y": "2"}) == "1-2"
    assert parse_duration_ns("1m30s") == 90_000_000_000
    assert parse_duration_ns("500ms") == 500_000_000
    with pytest.raises(InvalidArgument):
        parse_duration_ns("5x")


def test_empty_and_comment_lines_ignored():
    assert ap("", "  ", "# comment") == empty_container_config()
