process DEEPIMPUTE_SCORE {
    tag "${meta.id}"
    label 'process_single'

    input:
    tuple val(meta), path(loom)

    output:
    tuple val(meta), path("*.scores.json"), emit: scores
    tuple val(meta), path("*.plots")      , emit: plots
    path "versions.yml"                   , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    def prefix = task.ext.prefix ?: "${meta.id}"
    """
    deepimpute-score \\
        '${loom}' \\
        --output '${prefix}.scores.json' \\
        --plots '${prefix}.plots' \\
        ${args}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        deepimpute: \$(deepimpute --version | sed 's/^deepimpute, version //')
    END_VERSIONS
    """

    stub:
    def prefix = task.ext.prefix ?: "${meta.id}"
    """
    mkdir '${prefix}.plots'
    echo '{}' > '${prefix}.scores.json'

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        deepimpute: \$(deepimpute --version | sed 's/^deepimpute, version //')
    END_VERSIONS
    """
}
