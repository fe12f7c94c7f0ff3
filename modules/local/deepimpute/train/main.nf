process DEEPIMPUTE_TRAIN {
    tag "${meta.id}"
    label 'process_high'
    label 'process_gpu'

    input:
    tuple val(meta), path(loom)

    output:
    tuple val(meta), path("*.model")   , emit: model
    tuple val(meta), path("*.loss.png"), emit: loss_plot
    path "versions.yml"                , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    def prefix = task.ext.prefix ?: "${meta.id}"
    """
    deepimpute-train \\
        '${loom}' \\
        '${prefix}.model' \\
        --loss-plot '${prefix}.loss.png' \\
        --cores ${task.cpus} \\
        ${args}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        deepimpute: \$(deepimpute --version | sed 's/^deepimpute, version //')
    END_VERSIONS
    """

    stub:
    def prefix = task.ext.prefix ?: "${meta.id}"
    """
    mkdir '${prefix}.model'
    touch '${prefix}.model/model.json' '${prefix}.model/weights.npz' '${prefix}.loss.png'

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        deepimpute: \$(deepimpute --version | sed 's/^deepimpute, version //')
    END_VERSIONS
    """
}
