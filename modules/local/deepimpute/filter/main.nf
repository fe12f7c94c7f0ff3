process DEEPIMPUTE_FILTER {
    tag "${meta.id}"
    label 'process_medium'

    input:
    tuple val(meta), path(counts)

    output:
    tuple val(meta), path("*.filtered.loom"), emit: loom
    tuple val(meta), path("*.qc.png")       , emit: qc_plot
    path "versions.yml"                     , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    def prefix = task.ext.prefix ?: "${meta.id}"
    """
    deepimpute-filter \\
        '${counts}' \\
        '${prefix}.filtered.loom' \\
        --qc-plot '${prefix}.qc.png' \\
        ${args}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        deepimpute: \$(deepimpute --version | sed 's/^deepimpute, version //')
    END_VERSIONS
    """

    stub:
    def prefix = task.ext.prefix ?: "${meta.id}"
    """
    touch '${prefix}.filtered.loom' '${prefix}.qc.png'

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        deepimpute: \$(deepimpute --version | sed 's/^deepimpute, version //')
    END_VERSIONS
    """
}
