process DEEPIMPUTE_REPORT {
    tag "${meta.id}"
    label 'process_single'

    conda "${moduleDir}/environment.yml"
    container "${ workflow.containerEngine in ['singularity', 'apptainer'] && !task.ext.singularity_pull_docker_container ?
        'https://depot.galaxyproject.org/singularity/deepimpute-tool:0.1.0--pyhdfd78af_0' :
        'biocontainers/deepimpute-tool:0.1.0--pyhdfd78af_0' }"

    input:
    tuple val(meta), path(counts), path(model), path(scores), path(figures, stageAs: 'figures/*')

    output:
    tuple val(meta), path("*.multiqc/*"), emit: multiqc_files
    tuple val("${task.process}"), val('deepimpute'), eval('deepimpute --version | sed "s/^deepimpute, version //"'), emit: versions_deepimpute, topic: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    def prefix = task.ext.prefix ?: "${meta.id}"
    def scored = scores ? "--scores '${scores}'" : ''
    def figured = (figures instanceof List ? figures : [figures]).findAll { figure -> figure }.collect { figure -> "--figure '${figure}'" }.join(' ')
    """
    deepimpute-report \\
        '${prefix}' \\
        '${prefix}.multiqc' \\
        --counts '${counts}' \\
        --model '${model}' \\
        ${scored} \\
        ${figured} \\
        ${args}
    """

    stub:
    def prefix = task.ext.prefix ?: "${meta.id}"
    """
    mkdir '${prefix}.multiqc'
    echo '{}' > '${prefix}.multiqc/${prefix}.deepimpute_stats_mqc.json'
    """
}
